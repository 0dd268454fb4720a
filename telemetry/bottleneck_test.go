package telemetry_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/telemetry"
)

func TestBottlenecksWithoutData(t *testing.T) {
	r := newMetrics(newClock()).Bottlenecks()
	if len(r.Stages) != 0 || r.Dominant != "" || !strings.Contains(r.Summary, "no batches") {
		t.Errorf("report without data = %+v", r)
	}
	raw, _ := json.Marshal(r)
	if !strings.Contains(string(raw), `"stages":[]`) {
		t.Errorf("stages must be an empty list, not null: %s", raw)
	}
}

func TestBottlenecksRankStagesFromTheHistogram(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	for range 4 { // validate 2 ms, verify 1 ms, store 14 ms per batch
		m.ObserveBatch(context.Background(), report(c.Now(), storedN(10, time.Millisecond)...))
		m.BatchAcked(10, 3*time.Millisecond)
	}
	r := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m}).Bottlenecks(context.Background())
	order := []string{}
	for _, s := range r.Stages {
		order = append(order, s.Stage)
	}
	if strings.Join(order, ",") != "store,ack,validate,verify" {
		t.Fatalf("order = %v", order)
	}
	store := r.Stages[0]
	if store.Batches != 4 || store.AverageMs != 14 || store.Share != 0.7 || !store.Dominant || r.Dominant != "store" {
		t.Errorf("store = %+v", store)
	}
	// Every store call took 14 ms: the 95th percentile lies in the 10–25 ms bucket.
	if store.P95Ms <= 10 || store.P95Ms > 25 {
		t.Errorf("store p95 = %v ms, want within its bucket (10, 25]", store.P95Ms)
	}
	if !strings.Contains(store.Recommendation, "PostgreSQL") || !strings.Contains(store.Recommendation, "batch size") {
		t.Errorf("store recommendation = %q", store.Recommendation)
	}
	if r.Stages[1].Dominant || r.Stages[1].Recommendation != "" {
		t.Errorf("only the dominant stage gets a recommendation: %+v", r.Stages[1])
	}
	if want := "store takes 70% of batch time"; !strings.Contains(r.Summary, want) {
		t.Errorf("summary %q lacks %q", r.Summary, want)
	}
	if want := "4.7× the next stage (ack)"; !strings.Contains(r.Summary, want) {
		t.Errorf("summary %q lacks %q", r.Summary, want)
	}
}

func TestAnalyzeBottlenecksRecommendations(t *testing.T) {
	timing := func(stage string, avg time.Duration) telemetry.StageTiming {
		return telemetry.StageTiming{Stage: stage, Batches: 10, Total: 10 * avg,
			Buckets: []telemetry.Bucket{{UpperBound: 1, Count: 10}}}
	}
	for stage, want := range map[string]string{
		"validate": "CPU-bound", "verify": "CPU-bound", "store": "connection pool", "ack": "Redis latency",
	} {
		timings := []telemetry.StageTiming{timing("validate", time.Millisecond), timing("verify", time.Millisecond),
			timing("store", time.Millisecond), timing("ack", time.Millisecond)}
		for i := range timings {
			if timings[i].Stage == stage {
				timings[i] = timing(stage, 9*time.Millisecond)
			}
		}
		r := telemetry.AnalyzeBottlenecks(timings, time.Now())
		if r.Dominant != stage || !strings.Contains(r.Stages[0].Recommendation, want) {
			t.Errorf("%s dominant: got %s with %q", stage, r.Dominant, r.Stages[0].Recommendation)
		}
		if r.Stages[0].Share != 0.75 {
			t.Errorf("%s share = %v, want 9/12", stage, r.Stages[0].Share)
		}
	}
	single := telemetry.AnalyzeBottlenecks([]telemetry.StageTiming{timing("store", time.Millisecond)}, time.Now())
	if !strings.Contains(single.Summary, "only stage") || single.Stages[0].Share != 1 {
		t.Errorf("single stage = %+v", single)
	}
}

func TestStageTimingQuantile(t *testing.T) {
	st := telemetry.StageTiming{Batches: 100, Total: time.Second, Buckets: []telemetry.Bucket{
		{UpperBound: 0.01, Count: 50}, {UpperBound: 0.1, Count: 100}, {UpperBound: 1, Count: 100},
	}}
	// Rank 95 is the 45th of the 50 observations in (0.01, 0.1]: 0.01 + 0.09·45/50.
	if got := st.Quantile(0.95); got != 91*time.Millisecond {
		t.Errorf("p95 = %v, want 91ms", got)
	}
	if got := st.Quantile(0.5); got != 10*time.Millisecond {
		t.Errorf("p50 = %v, want 10ms", got)
	}
	over := telemetry.StageTiming{Batches: 10, Buckets: []telemetry.Bucket{{UpperBound: 0.5, Count: 2}}}
	if got := over.Quantile(0.95); got != 500*time.Millisecond {
		t.Errorf("rank beyond the last bound = %v, want that bound", got)
	}
	if got := (telemetry.StageTiming{}).Quantile(0.95); got != 0 {
		t.Errorf("empty = %v", got)
	}
}
