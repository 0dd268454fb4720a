// Package soakstat holds the samples of a soak run (one row every few seconds:
// the worker's memory, goroutines and open files, Redis memory, end-to-end
// latency), reads and writes them as CSV, and judges growth: a metric grows
// when the least-squares line through the settled part of the run (its second
// half, or later for a metric that fills up by design) rises by more than its
// tolerance over that part.
package soakstat

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Sample is one observation, Elapsed seconds after the start of the run.
type Sample struct {
	Elapsed    float64 // s
	RSSKiB     float64 // worker VmRSS
	Goroutines float64 // go_goroutines
	OpenFDs    float64 // process_open_fds
	RedisBytes float64 // Redis INFO memory used_memory
	P99Ms      float64 // p99 of ingested_at - received_at over the rows stored since the last sample
	Rows       float64 // rows stored so far
}

// Metric names a column, its unit and its growth tolerance.
type Metric struct {
	Name  string
	Unit  string
	Value func(Sample) float64
	// The fitted rise over the judged span may be at most
	// max(Relative × the span's mean, Absolute).
	Relative, Absolute float64
}

// Metrics are the columns judged for growth. The tolerances allow the noise of
// a shared machine (a GC cycle moves RSS by megabytes, a batch in flight adds
// goroutines) but not a leak that keeps rising: 10 % of the level over the
// judged span, with a floor for small values.
var Metrics = []Metric{
	{Name: "rss", Unit: "MiB", Value: func(s Sample) float64 { return s.RSSKiB / 1024 }, Relative: 0.10, Absolute: 16},
	{Name: "goroutines", Unit: "goroutines", Value: func(s Sample) float64 { return s.Goroutines }, Relative: 0.10, Absolute: 10},
	{Name: "fds", Unit: "open files", Value: func(s Sample) float64 { return s.OpenFDs }, Relative: 0.10, Absolute: 5},
	{Name: "redis", Unit: "MiB", Value: func(s Sample) float64 { return s.RedisBytes / (1 << 20) }, Relative: 0.10, Absolute: 16},
	// Latency is noisier (a slow fsync or a checkpoint moves one 10 s window):
	// 50 % of its level, at least 100 ms.
	{Name: "p99", Unit: "ms", Value: func(s Sample) float64 { return s.P99Ms }, Relative: 0.50, Absolute: 100},
}

var header = []string{"elapsed_s", "rss_kib", "goroutines", "open_fds", "redis_used_bytes", "p99_ms", "rows"}

func (s Sample) fields() []float64 {
	return []float64{s.Elapsed, s.RSSKiB, s.Goroutines, s.OpenFDs, s.RedisBytes, s.P99Ms, s.Rows}
}

// Writer appends samples to a CSV stream, header first.
type Writer struct{ w *csv.Writer }

// NewWriter writes the header and returns the writer.
func NewWriter(w io.Writer) (*Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return nil, fmt.Errorf("write soak CSV header: %w", err)
	}
	cw.Flush()
	return &Writer{w: cw}, cw.Error()
}

// Write appends one sample and flushes it, so that a run cut short keeps its rows.
func (w *Writer) Write(s Sample) error {
	row := make([]string, 0, len(header))
	for _, v := range s.fields() {
		row = append(row, strconv.FormatFloat(v, 'f', -1, 64))
	}
	if err := w.w.Write(row); err != nil {
		return fmt.Errorf("write soak sample: %w", err)
	}
	w.w.Flush()
	return w.w.Error()
}

// Read parses a CSV written by Writer.
func Read(r io.Reader) ([]Sample, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read soak CSV: %w", err)
	}
	if len(rows) == 0 || len(rows[0]) != len(header) {
		return nil, fmt.Errorf("read soak CSV: want the header %v", header)
	}
	out := make([]Sample, 0, len(rows)-1)
	for i, row := range rows[1:] {
		var v [7]float64
		for j, f := range row {
			if v[j], err = strconv.ParseFloat(f, 64); err != nil {
				return nil, fmt.Errorf("read soak CSV: line %d, %s: %w", i+2, header[j], err)
			}
		}
		out = append(out, Sample{Elapsed: v[0], RSSKiB: v[1], Goroutines: v[2], OpenFDs: v[3], RedisBytes: v[4], P99Ms: v[5], Rows: v[6]})
	}
	return out, nil
}

// Slope fits y = a + b·x by least squares and returns b.
func Slope(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// MinJudgedSeconds is the shortest settled span a metric is judged over: a
// fit through fewer minutes says more about noise than about growth.
const MinJudgedSeconds = 10 * 60

// Judgement is one metric's verdict over the settled part of a run.
type Judgement struct {
	Metric    Metric
	Judged    bool    // false when the settled part is shorter than MinJudgedSeconds
	From, To  float64 // the judged span, in minutes of the run
	Mean      float64 // over the judged span
	PerMinute float64 // fitted slope
	Rise      float64 // slope × the span's duration
	Tolerance float64
	Grows     bool
}

func (j Judgement) String() string {
	if !j.Judged {
		return fmt.Sprintf("%-10s NOT JUDGED: it settles after minute %.0f, and the run has no %d minutes after that",
			j.Metric.Name, j.From, MinJudgedSeconds/60)
	}
	verdict := "flat"
	if j.Grows {
		verdict = "GROWS"
	}
	return fmt.Sprintf("%-10s minutes %3.0f–%3.0f  mean %10.1f %-10s slope %+9.3f/min  rise %+9.1f  tolerance %8.1f  %s",
		j.Metric.Name, j.From, j.To, j.Mean, j.Metric.Unit, j.PerMinute, j.Rise, j.Tolerance, verdict)
}

// Judge fits each metric over the samples of the second half of the run, or
// from settle[metric name] seconds on when that is later: a metric that fills
// up by design (Redis holding a log of the last N minutes) is judged only once
// it has had time to fill. Samples whose value is NaN (not measured) are left
// out of that metric.
func Judge(samples []Sample, settle map[string]float64) []Judgement {
	if len(samples) == 0 {
		return nil
	}
	end := samples[len(samples)-1].Elapsed
	var out []Judgement
	for _, m := range Metrics {
		from := max(end/2, settle[m.Name])
		var x, y []float64
		for _, s := range samples {
			if v := m.Value(s); s.Elapsed >= from && !math.IsNaN(v) {
				x, y = append(x, s.Elapsed/60), append(y, v)
			}
		}
		j := Judgement{Metric: m, From: from / 60, To: end / 60}
		if len(x) >= 2 && x[len(x)-1]-x[0] >= MinJudgedSeconds/60 {
			j.Judged = true
			var sum float64
			for _, v := range y {
				sum += v
			}
			j.Mean = sum / float64(len(y))
			j.PerMinute = Slope(x, y)
			j.Rise = j.PerMinute * (x[len(x)-1] - x[0])
			j.Tolerance = math.Max(m.Relative*j.Mean, m.Absolute)
			j.Grows = j.Rise > j.Tolerance
		}
		out = append(out, j)
	}
	return out
}
