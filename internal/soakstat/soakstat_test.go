package soakstat

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestSlopeOfALine(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	y := []float64{3, 5, 7, 9, 11}
	if got := Slope(x, y); math.Abs(got-2) > 1e-9 {
		t.Fatalf("Slope = %v, want 2", got)
	}
	if got := Slope([]float64{1}, []float64{1}); got != 0 {
		t.Fatalf("Slope of one point = %v, want 0", got)
	}
}

func run(minutes int, rss func(min float64) float64) []Sample {
	var out []Sample
	for s := 0; s <= minutes*60; s += 10 {
		m := float64(s) / 60
		out = append(out, Sample{Elapsed: float64(s), RSSKiB: rss(m) * 1024, Goroutines: 40, OpenFDs: 20, RedisBytes: 50 << 20, P99Ms: 30, Rows: float64(s) * 5000})
	}
	return out
}

func grows(js []Judgement, name string) bool {
	for _, j := range js {
		if j.Metric.Name == name {
			return j.Grows
		}
	}
	panic(name)
}

func TestJudgeTellsALeakFromAWarmUp(t *testing.T) {
	// Rises for the first third, then flat with noise: not growth.
	warm := run(30, func(m float64) float64 { return 100 + 50*math.Min(m, 10)/10 + 3*math.Sin(m*7) })
	if js := Judge(warm, nil); grows(js, "rss") || grows(js, "goroutines") {
		t.Fatalf("warm-up judged as growth: %v", js)
	}
	// 2 MiB a minute on 150 MiB: 30 MiB over the second half, more than 10 %.
	leak := run(30, func(m float64) float64 { return 150 + 2*m })
	if js := Judge(leak, nil); !grows(js, "rss") || grows(js, "fds") {
		t.Fatalf("a steady leak not judged as growth: %v", js)
	}
}

func judgement(js []Judgement, name string) Judgement {
	for _, j := range js {
		if j.Metric.Name == name {
			return j
		}
	}
	panic(name)
}

func TestJudgeWaitsForAMetricToSettle(t *testing.T) {
	// Redis fills for 35 minutes (a log of the last 35 minutes), then holds.
	samples := run(50, func(float64) float64 { return 100 })
	for i := range samples {
		m := samples[i].Elapsed / 60
		samples[i].RedisBytes = (100 + 200*math.Min(m, 35)/35 + 2*math.Sin(m*5)) * (1 << 20)
	}
	if j := judgement(Judge(samples, nil), "redis"); !j.Judged || !j.Grows {
		t.Fatalf("from the half, the filling log is growth: %v", j)
	}
	settled := Judge(samples, map[string]float64{"redis": 35 * 60})
	if j := judgement(settled, "redis"); !j.Judged || j.Grows || j.From != 35 {
		t.Fatalf("after it settles, the log is flat: %v", j)
	}
	if j := judgement(settled, "rss"); !j.Judged || j.From != 25 {
		t.Fatalf("other metrics are still judged from the half: %v", j)
	}
	// A run that ends before the metric settles cannot judge it.
	short := Judge(samples[:len(samples)*4/5], map[string]float64{"redis": 35 * 60})
	if j := judgement(short, "redis"); j.Judged || j.Grows || !strings.Contains(j.String(), "NOT JUDGED") {
		t.Fatalf("40 minutes judge a metric settling at 35: %v", j)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	in := run(1, func(m float64) float64 { return 100 + m })
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range in {
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	out, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || out[3] != in[3] {
		t.Fatalf("read %d samples (%+v), want %d (%+v)", len(out), out[3], len(in), in[3])
	}
}
