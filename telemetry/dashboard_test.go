package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

func TestDashboardSystemStatus(t *testing.T) {
	mixed := func(failed, ok int) []ev {
		out := storedN(ok, 10*time.Millisecond)
		for range failed {
			out = append(out, rejected(audit.ReasonValidation))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		events   []ev
		breaker  pipeline.BreakerState
		latMs    int64 // threshold; 0 = default 5000
		want     string
		inReason string
	}{
		{"no traffic", nil, pipeline.BreakerClosed, 0, telemetry.StatusHealthy, ""},
		{"all stored", mixed(0, 100), pipeline.BreakerClosed, 0, telemetry.StatusHealthy, ""},
		{"4% errors", mixed(4, 96), pipeline.BreakerClosed, 0, telemetry.StatusHealthy, ""},
		{"6% errors", mixed(6, 94), pipeline.BreakerClosed, 0, telemetry.StatusDegraded, "error rate 6.0%"},
		{"10% errors", mixed(10, 90), pipeline.BreakerClosed, 0, telemetry.StatusCritical, "error rate 10.0%"},
		{"half-open", mixed(0, 10), pipeline.BreakerHalfOpen, 0, telemetry.StatusDegraded, "half-open"},
		{"open", mixed(0, 10), pipeline.BreakerOpen, 0, telemetry.StatusCritical, "open"},
		{"slow", storedN(10, 3*time.Second), pipeline.BreakerClosed, 0, telemetry.StatusDegraded, "p95 latency 3000 ms"},
		{"too slow", storedN(10, 3*time.Second), pipeline.BreakerClosed, 2000, telemetry.StatusCritical, "p95 latency 3000 ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			m := newMetrics(c)
			d := telemetry.NewDashboard(telemetry.DashboardOptions{
				Metrics: m, Breaker: func() pipeline.BreakerState { return tc.breaker },
				Thresholds: telemetry.Thresholds{ProcessingLatencyMs: tc.latMs},
			})
			if len(tc.events) > 0 {
				m.ObserveBatch(context.Background(), report(c.Now(), tc.events...))
			}
			o := d.Build(context.Background()).Overview
			if o.SystemStatus != tc.want {
				t.Errorf("status = %s (%v), want %s", o.SystemStatus, o.StatusReasons, tc.want)
			}
			if tc.inReason != "" && !strings.Contains(strings.Join(o.StatusReasons, "; "), tc.inReason) {
				t.Errorf("reasons %q do not mention %q", o.StatusReasons, tc.inReason)
			}
			if tc.want == telemetry.StatusHealthy && len(o.StatusReasons) != 0 {
				t.Errorf("healthy with reasons %q", o.StatusReasons)
			}
		})
	}
}

func TestDashboardThresholdsChangeAtRunTime(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	if got := d.Thresholds(); got.ErrorRate != 0.1 || got.ProcessingLatencyMs != 5000 {
		t.Errorf("default thresholds = %+v", got)
	}
	m.ObserveBatch(context.Background(), report(c.Now(), append(storedN(97, time.Millisecond), rejected(audit.ReasonValidation),
		rejected(audit.ReasonValidation), rejected(audit.ReasonValidation))...))
	if got := d.Build(context.Background()).Overview.SystemStatus; got != telemetry.StatusHealthy {
		t.Fatalf("3%% errors with the default thresholds: %s", got)
	}
	d.SetThresholds(telemetry.Thresholds{ErrorRate: 0.02})
	data := d.Build(context.Background())
	if data.Overview.SystemStatus != telemetry.StatusCritical {
		t.Errorf("3%% errors with a 2%% threshold: %s", data.Overview.SystemStatus)
	}
	if data.Thresholds.ErrorRate != 0.02 || data.Thresholds.ProcessingLatencyMs != 5000 {
		t.Errorf("thresholds shown = %+v", data.Thresholds)
	}
}

func TestDashboardSections(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // stops the sampler
	m.ObserveBatch(ctx, report(c.Now(), storedN(5, time.Second)...))
	m.BatchAcked(5, 4*time.Millisecond)
	m.BreakerChanged(pipeline.BreakerClosed, pipeline.BreakerHalfOpen)
	go m.SampleQueues(ctx, time.Hour, func(context.Context) (map[string]int64, error) {
		return map[string]int64{"wait": 12, "dead_letter": 3}, nil
	})
	testenv.Eventually(t, 5*time.Second, "a queue sample", func() bool { _, at := m.QueueDepths(); return !at.IsZero() })

	d := telemetry.NewDashboard(telemetry.DashboardOptions{
		Metrics: m,
		Alerts: func(context.Context) (audit.AlertStatistics, error) {
			return audit.AlertStatistics{Total: 4, ByStatus: map[audit.AlertStatus]int64{audit.AlertActive: 4}}, nil
		},
	})
	data := d.Build(ctx)
	if data.CircuitBreaker.State != pipeline.BreakerHalfOpen {
		t.Errorf("breaker = %s, want the last transition without a Breaker func", data.CircuitBreaker.State)
	}
	if data.Queue.Depths["wait"] != 12 || data.Queue.Depths["dead_letter"] != 3 || data.Queue.SampledAt == nil {
		t.Errorf("queue = %+v", data.Queue)
	}
	wantStages := []telemetry.StageAverage{
		{Stage: "validate", Batches: 1, AverageMs: 2}, {Stage: "verify", Batches: 1, AverageMs: 1},
		{Stage: "store", Batches: 1, AverageMs: 14}, {Stage: "ack", Batches: 1, AverageMs: 4},
	}
	if len(data.Stages) != len(wantStages) {
		t.Fatalf("stages = %+v", data.Stages)
	}
	for i := range wantStages {
		if data.Stages[i] != wantStages[i] {
			t.Errorf("stage %d = %+v, want %+v", i, data.Stages[i], wantStages[i])
		}
	}
	if data.Runtime.Goroutines < 1 || data.Runtime.HeapAllocBytes == 0 || data.Runtime.NumCPU < 1 {
		t.Errorf("runtime = %+v", data.Runtime)
	}

	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	for _, key := range []string{"overview", "throughput", "latency", "stages", "queue", "circuitBreaker",
		"recentErrors", "alerts", "runtime", "thresholds", "timestamp"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("dashboard JSON lacks %q: %s", key, raw)
		}
	}
	alerts, _ := doc["alerts"].(map[string]any)
	if alerts["total"] != 4.0 || alerts["byStatus"].(map[string]any)["active"] != 4.0 {
		t.Errorf("alerts = %v", doc["alerts"])
	}
	if doc["overview"].(map[string]any)["systemStatus"] != telemetry.StatusDegraded {
		t.Errorf("overview = %v", doc["overview"])
	}
}

func TestDashboardAlertsOptional(t *testing.T) {
	m := newMetrics(newClock())
	if got := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m}).Build(context.Background()).Alerts; got != nil {
		t.Errorf("alerts without a source = %+v, want nil", got)
	}
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m,
		Alerts: func(ctx context.Context) (audit.AlertStatistics, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the alert count runs without a deadline")
			}
			return audit.AlertStatistics{}, errors.New("database is down")
		}})
	got := d.Build(context.Background()).Alerts
	if got == nil || !strings.Contains(got.Error, "database is down") || got.AlertStatistics != nil {
		t.Errorf("alerts on failure = %+v", got)
	}
}

func TestEnhancedMetrics(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	ctx := context.Background()
	m.ObserveBatch(ctx, report(c.Now(), append(storedN(9, 20*time.Millisecond), rejected(audit.ReasonValidation))...))
	got := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m}).EnhancedMetrics(ctx)
	if got.TotalEvents != 10 || got.ErrorRate != 0.1 || got.AverageBatchTimeMs != 17 {
		t.Errorf("enhanced = total %d, error rate %v, batch %v ms", got.TotalEvents, got.ErrorRate, got.AverageBatchTimeMs)
	}
	if len(got.Bottlenecks) != 3 || got.Bottlenecks[0].Stage != "store" || got.Latency.P50 != 20 {
		t.Errorf("enhanced bottlenecks %+v, latency %+v", got.Bottlenecks, got.Latency)
	}
}
