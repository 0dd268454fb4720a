// Command soakplot draws the samples of a soak run (the CSV TestSoak writes)
// as one PNG per metric and prints the growth verdict of each: the fitted
// rise over the second half of the run (Redis: after -redis-settle, the
// detectors' log retention) against its tolerance (internal/soakstat). It
// exits 1 when a metric grows or cannot be judged.
//
//	go run ./scripts/soakplot -csv soak.csv -out docs/images
package main

import (
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/smartlogs/audit-worker/internal/soakstat"
	"github.com/smartlogs/audit-worker/monitor"
)

func main() {
	csvPath := flag.String("csv", "soak.csv", "samples written by TestSoak")
	outDir := flag.String("out", "docs/images", "directory of the soak-<metric>.png files")
	redisSettle := flag.Duration("redis-settle", monitor.LogRetention(monitor.DefaultConfig()),
		"judge Redis memory only after this much of the run: the detectors' log fills until then")
	flag.Parse()
	grows, err := run(*csvPath, *outDir, map[string]float64{"redis": redisSettle.Seconds()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "soakplot:", err)
		os.Exit(2)
	}
	if grows {
		fmt.Println("verdict: GROWTH, or a metric not judged")
		os.Exit(1)
	}
	fmt.Println("verdict: no growth")
}

func run(csvPath, outDir string, settle map[string]float64) (grows bool, err error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	samples, err := soakstat.Read(f)
	if err != nil {
		return false, err
	}
	if len(samples) < 2 {
		return false, fmt.Errorf("%s: %d samples, need at least 2", csvPath, len(samples))
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return false, err
	}
	fmt.Printf("%d samples over %.1f min; growth over the second half (Redis from minute %.0f):\n",
		len(samples), samples[len(samples)-1].Elapsed/60, settle["redis"]/60)
	for _, j := range soakstat.Judge(samples, settle) {
		fmt.Println(" ", j)
		grows = grows || j.Grows || !j.Judged
		path := filepath.Join(outDir, "soak-"+j.Metric.Name+".png")
		if err := draw(path, samples, j); err != nil {
			return false, fmt.Errorf("draw %s: %w", path, err)
		}
		fmt.Println("  wrote", path)
	}
	return grows, nil
}

// draw plots one metric against minutes, with the second half's fitted line.
func draw(path string, samples []soakstat.Sample, j soakstat.Judgement) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("soak: %s (%s)", j.Metric.Name, verdict(j))
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = j.Metric.Unit
	p.Y.Min = 0
	pts := make(plotter.XYs, 0, len(samples))
	for _, s := range samples {
		if v := j.Metric.Value(s); !math.IsNaN(v) {
			pts = append(pts, plotter.XY{X: s.Elapsed / 60, Y: v})
		}
	}
	if len(pts) < 2 {
		return fmt.Errorf("%d points, need at least 2", len(pts))
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	p.Add(plotter.NewGrid(), line)
	p.Legend.Add(j.Metric.Name, line)
	if j.Judged {
		// The fit through the judged span, through its mean at the span's centre.
		c := (j.From + j.To) / 2
		fit, err := plotter.NewLine(plotter.XYs{
			{X: j.From, Y: j.Mean + j.PerMinute*(j.From-c)},
			{X: j.To, Y: j.Mean + j.PerMinute*(j.To-c)},
		})
		if err != nil {
			return err
		}
		fit.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
		fit.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(fit)
		p.Legend.Add(fmt.Sprintf("fit, minutes %.0f–%.0f", j.From, j.To), fit)
	}
	p.Legend.Top = false // bottom right: below the curves, which start above zero
	return p.Save(16*vg.Centimeter, 9*vg.Centimeter, path)
}

func verdict(j soakstat.Judgement) string {
	if !j.Judged {
		return "not judged"
	}
	if j.Grows {
		return fmt.Sprintf("GROWS %+.1f > %.1f", j.Rise, j.Tolerance)
	}
	return fmt.Sprintf("flat: rise %+.1f within %.1f", j.Rise, j.Tolerance)
}
