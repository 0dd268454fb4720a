package telemetry_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/telemetry"
)

func storedN(n int, age time.Duration) []ev {
	out := make([]ev, n)
	for i := range out {
		out[i] = stored(age)
	}
	return out
}

func TestThroughputWindows(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	ctx := context.Background()
	c.Add(90 * time.Second) // uptime beyond the one-minute window
	m.ObserveBatch(ctx, report(c.Now(), storedN(100, time.Millisecond)...))
	c.Add(time.Second)
	m.ObserveBatch(ctx, report(c.Now(), storedN(200, time.Millisecond)...))
	m.ObserveBatch(ctx, report(c.Now(), storedN(100, time.Millisecond)...)) // same second: 300 in it
	c.Add(29 * time.Second)
	m.ObserveBatch(ctx, report(c.Now(), storedN(50, time.Millisecond)...))

	got := d.Build(ctx).Throughput
	// 450 events in the last minute; the last hour covers the 120 s of uptime.
	if got.Current != 7.5 || got.Peak != 300 || got.Average != 3.75 {
		t.Errorf("throughput = %+v, want current 7.5, peak 300, average 3.75", got)
	}

	c.Add(60 * time.Second) // the first three batches leave the minute
	got = d.Build(ctx).Throughput
	if got.Current != 0 || got.Peak != 300 {
		t.Errorf("a minute later: throughput = %+v, want current 0 and the peak kept", got)
	}
	c.Add(time.Hour)
	got = d.Build(ctx).Throughput
	if got.Peak != 0 || got.Average != 0 {
		t.Errorf("an hour later: throughput = %+v, want nothing left", got)
	}
	if total := d.Build(ctx).Overview.TotalEvents; total != 450 {
		t.Errorf("total events = %d, want 450 (totals never expire)", total)
	}
}

func TestLatencyPercentilesOverTheLastMinute(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	ctx := context.Background()
	events := make([]ev, 100)
	for i := range events {
		events[i] = stored(time.Duration(i+1) * time.Millisecond)
	}
	m.ObserveBatch(ctx, report(c.Now(), events...))

	got := d.Build(ctx).Latency
	want := telemetry.Latency{P50: 50, P95: 95, P99: 99, Max: 100, Samples: 100, WindowSeconds: 60}
	if got != want {
		t.Errorf("latency = %+v, want %+v", got, want)
	}
	c.Add(61 * time.Second)
	if got := d.Build(ctx).Latency; got.Samples != 0 || got.Max != 0 || got.P99 != 0 {
		t.Errorf("a minute later: latency = %+v, want empty", got)
	}
}

// A batch of a thousand events must not fill the latency sample alone; the
// max stays exact.
func TestLatencySampleIsBoundedPerBatch(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	events := storedN(1000, 10*time.Millisecond)
	events[999] = stored(time.Second)
	m.ObserveBatch(context.Background(), report(c.Now(), events...))
	got := d.Build(context.Background()).Latency
	if got.Samples == 0 || got.Samples > 260 {
		t.Errorf("one batch of 1000 gave %d samples, want about 256", got.Samples)
	}
	if got.Max != 1000 || got.P50 != 10 {
		t.Errorf("latency = %+v, want p50 10 ms and the exact max 1000 ms", got)
	}
}

func TestErrorRateCountsRejectedAndFailedBatches(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	ctx := context.Background()
	events := storedN(8, time.Millisecond)
	events = append(events, rejected(audit.ReasonValidation), rejected(audit.ReasonIntegrityViolation))
	m.ObserveBatch(ctx, report(c.Now(), events...))
	if got := d.Build(ctx).Overview.ErrorRate; got != 0.2 {
		t.Errorf("error rate = %v, want 2/10", got)
	}
	failed := report(c.Now(), storedN(10, time.Millisecond)...)
	failed.Err, failed.Outcomes, failed.Accepted = context.DeadlineExceeded, nil, nil
	m.ObserveBatch(ctx, failed)
	if got := d.Build(ctx).Overview.ErrorRate; got != 0.6 {
		t.Errorf("error rate = %v, want (2+10)/20", got)
	}
	c.Add(2 * time.Minute)
	if got := d.Build(ctx).Overview.ErrorRate; got != 0 {
		t.Errorf("error rate = %v with no traffic in the last minute, want 0", got)
	}
}

func TestRecentErrorsAreBoundedNewestFirstAndHoldNoContent(t *testing.T) {
	c := newClock()
	m := telemetry.NewMetrics(telemetry.MetricsOptions{Now: c.Now, RecentErrors: 3})
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	ctx := context.Background()
	m.ObserveBatch(ctx, report(c.Now(), rejected(audit.ReasonValidation), rejected(audit.ReasonValidation)))
	c.Add(time.Second)
	m.ObserveBatch(ctx, report(c.Now(), rejected(audit.ReasonIntegrityViolation), stored(time.Millisecond)))
	c.Add(time.Second)
	m.BreakerChanged("CLOSED", "OPEN")

	got := d.Build(ctx).RecentErrors
	if len(got) != 3 {
		t.Fatalf("recent errors = %+v, want the 3 newest", got)
	}
	if got[0].Kind != "circuit_breaker" || got[1].Reason != audit.ReasonIntegrityViolation || got[2].Reason != audit.ReasonValidation {
		t.Errorf("recent errors not newest first: %+v", got)
	}
	if got[1].Field != "principalId" || got[1].Code != "INVALID_VALUE" || !got[1].Time.Equal(c.Now().Add(-time.Second)) {
		t.Errorf("rejected entry = %+v", got[1])
	}
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), "SECRET-PII") {
		t.Errorf("recent errors leak event content: %s", raw)
	}
}
