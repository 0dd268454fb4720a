package telemetry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

func newClock() *testenv.Clock { return testenv.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

func newMetrics(c *testenv.Clock) *telemetry.Metrics {
	return telemetry.NewMetrics(telemetry.MetricsOptions{
		Now: c.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// ev describes one input of a test batch and what happened to it.
type ev struct {
	source string
	status pipeline.Status
	reason string        // for rejected events
	age    time.Duration // enqueue → commit
}

func stored(age time.Duration) ev {
	return ev{source: "bullmq:audit", status: pipeline.StatusStored, age: age}
}
func dup() ev { return ev{source: "bullmq:audit", status: pipeline.StatusDuplicate} }
func rejected(reason string) ev {
	return ev{source: "http", status: pipeline.StatusRejected, reason: reason}
}

// report builds the BatchReport the processor would hand its observers.
func report(committed time.Time, events ...ev) *pipeline.BatchReport {
	r := &pipeline.BatchReport{
		CommittedAt: committed,
		Stages:      pipeline.StageTimes{Validate: 2 * time.Millisecond, Verify: time.Millisecond, Store: 14 * time.Millisecond},
	}
	for i, e := range events {
		r.Inputs = append(r.Inputs, pipeline.Input{
			Source: e.source, Payload: []byte(`{"principalId":"SECRET-PII"}`), ReceivedAt: committed.Add(-e.age),
		})
		o := pipeline.Outcome{Status: e.status, Reason: e.reason, Key: "k"}
		if e.status == pipeline.StatusRejected {
			o.Message = "principalId SECRET-PII is wrong"
			o.Errors = []audit.FieldError{{Field: "principalId", Code: "INVALID_VALUE", Message: "SECRET-PII"}}
		} else {
			r.Accepted = append(r.Accepted, pipeline.AcceptedEvent{Input: i, Key: "k", Stored: e.status == pipeline.StatusStored})
		}
		r.Outcomes = append(r.Outcomes, o)
	}
	return r
}

// sample is what the registry holds for one series: the value of a counter or
// gauge, or the count and sum of a histogram.
type sample struct {
	value, sum float64
	count      uint64
	found      bool
}

// gather finds the series name{labels} (pairs of label name and value).
func gather(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) sample {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, l := range m.GetLabel() {
					ok = ok || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !ok {
					continue series
				}
			}
			s := sample{found: true, value: m.GetCounter().GetValue() + m.GetGauge().GetValue()}
			if h := m.GetHistogram(); h != nil {
				s.count, s.sum = h.GetSampleCount(), h.GetSampleSum()
			}
			return s
		}
	}
	return sample{}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestObserveBatchCountsEventsByOutcome(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	reg := m.Registry()
	m.ObserveBatch(context.Background(), report(c.Now(),
		stored(100*time.Millisecond), stored(2*time.Second), dup(),
		rejected(audit.ReasonValidation), rejected(audit.ReasonIntegrityViolation), rejected(audit.ReasonValidation),
		rejected(audit.ReasonStoreRefused), rejected(audit.ReasonForbiddenOrganization), rejected("something_new")))

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"audit_events_received_total", []string{"source", "bullmq"}, 3},
		{"audit_events_received_total", []string{"source", "http"}, 6},
		{"audit_events_stored_total", nil, 2},
		{"audit_events_duplicate_total", nil, 1},
		{"audit_events_rejected_total", []string{"reason", audit.ReasonValidation}, 2},
		{"audit_events_rejected_total", []string{"reason", audit.ReasonIntegrityViolation}, 1},
		{"audit_events_rejected_total", []string{"reason", audit.ReasonStoreRefused}, 1},
		{"audit_events_rejected_total", []string{"reason", audit.ReasonForbiddenOrganization}, 1},
		{"audit_events_rejected_total", []string{"reason", audit.ReasonProcessingFailed}, 0},
		{"audit_events_rejected_total", []string{"reason", "other"}, 1},
		{"audit_store_failures_total", nil, 0},
	} {
		if got := gather(t, reg, tc.name, tc.labels...); !got.found || got.value != tc.want {
			t.Errorf("%s%v = %+v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := gather(t, reg, "audit_batch_size_events"); got.count != 1 || got.sum != 9 {
		t.Errorf("batch size histogram = %+v, want one batch of 9", got)
	}
	if got := gather(t, reg, "audit_end_to_end_latency_seconds"); got.count != 2 || !near(got.sum, 2.1) {
		t.Errorf("end-to-end histogram = %+v, want 2 events summing 2.1s", got)
	}
	for stage, want := range map[string]float64{"validate": 0.002, "verify": 0.001, "store": 0.014} {
		if got := gather(t, reg, "audit_stage_duration_seconds", "stage", stage); got.count != 1 || !near(got.sum, want) {
			t.Errorf("stage %s = %+v, want one batch of %vs", stage, got, want)
		}
	}
	if got := gather(t, reg, "audit_stage_duration_seconds", "stage", "ack"); got.count != 0 {
		t.Errorf("ack stage counted %d batches before any ack", got.count)
	}
}

func TestObserveBatchCountsUnknownSourcesApart(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	r := report(c.Now(), stored(time.Second), stored(time.Second), stored(time.Second))
	r.Inputs[0].Source, r.Inputs[1].Source, r.Inputs[2].Source = "", "replay:file", "http"
	m.ObserveBatch(context.Background(), r)
	for src, want := range map[string]float64{"unknown": 1, "replay": 1, "http": 1, "bullmq": 0} {
		if got := gather(t, m.Registry(), "audit_events_received_total", "source", src); got.value != want {
			t.Errorf("received{source=%q} = %v, want %v", src, got.value, want)
		}
	}
}

func TestObserveBatchStoreFailure(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	r := report(c.Now(), stored(time.Second), stored(time.Second))
	r.Err, r.Outcomes, r.Accepted, r.CommittedAt = errors.New("store batch of 2: connection refused"), nil, nil, time.Time{}
	m.ObserveBatch(context.Background(), r)

	reg := m.Registry()
	if got := gather(t, reg, "audit_store_failures_total"); got.value != 1 {
		t.Errorf("store failures = %v, want 1", got.value)
	}
	if got := gather(t, reg, "audit_events_stored_total"); got.value != 0 {
		t.Errorf("stored = %v after a failed batch", got.value)
	}
	if got := gather(t, reg, "audit_stage_duration_seconds", "stage", "store"); got.count != 1 {
		t.Errorf("a failed store call must still be timed, got %d", got.count)
	}
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m}).Build(context.Background())
	if d.Overview.ErrorRate != 1 || d.Overview.FailedEvents != 2 {
		t.Errorf("overview = %+v, want error rate 1 and 2 failed events", d.Overview)
	}
	if len(d.RecentErrors) != 1 || d.RecentErrors[0].Kind != "store_failure" ||
		!strings.Contains(d.RecentErrors[0].Message, "connection refused") {
		t.Errorf("recent errors = %+v", d.RecentErrors)
	}
}

func TestBreakerAckRetryAndReloadMetrics(t *testing.T) {
	m := newMetrics(newClock())
	reg := m.Registry()
	m.BreakerChanged(pipeline.BreakerClosed, pipeline.BreakerOpen)
	if got := gather(t, reg, "audit_circuit_breaker_state"); got.value != 2 {
		t.Errorf("state after opening = %v, want 2", got.value)
	}
	m.BreakerChanged(pipeline.BreakerOpen, pipeline.BreakerHalfOpen)
	if got := gather(t, reg, "audit_circuit_breaker_state"); got.value != 1 {
		t.Errorf("state when half-open = %v, want 1", got.value)
	}
	m.BreakerChanged(pipeline.BreakerHalfOpen, pipeline.BreakerClosed)
	if got := gather(t, reg, "audit_circuit_breaker_state"); got.value != 0 {
		t.Errorf("state after closing = %v, want 0", got.value)
	}
	if got := m.BreakerState(); got != pipeline.BreakerClosed {
		t.Errorf("BreakerState = %s", got)
	}
	if got := gather(t, reg, "audit_circuit_breaker_transitions_total", "from", "closed", "to", "open"); got.value != 1 {
		t.Errorf("closed→open transitions = %v, want 1", got.value)
	}
	if got := gather(t, reg, "audit_circuit_breaker_transitions_total", "from", "open", "to", "half_open"); got.value != 1 {
		t.Errorf("open→half_open transitions = %v, want 1", got.value)
	}

	m.BatchAcked(10, 3*time.Millisecond)
	m.BatchAcked(5, 5*time.Millisecond)
	if got := gather(t, reg, "audit_stage_duration_seconds", "stage", "ack"); got.count != 2 || !near(got.sum, 0.008) {
		t.Errorf("ack stage = %+v, want 2 batches summing 8ms", got)
	}
	if got := gather(t, reg, "audit_jobs_acked_total"); got.value != 15 {
		t.Errorf("acked jobs = %v, want 15", got.value)
	}

	m.BatchRetried(100, errors.New("store down"))
	m.BatchRetried(50, errors.New("store down"))
	if got := gather(t, reg, "audit_batch_retries_total"); got.value != 2 {
		t.Errorf("retries = %v, want 2", got.value)
	}
	if got := gather(t, reg, "audit_batch_retried_events_total"); got.value != 150 {
		t.Errorf("retried events = %v, want 150", got.value)
	}

	m.ConfigReload("applied")
	m.ConfigReload("applied")
	m.ConfigReload("refused")
	if got := gather(t, reg, "audit_config_reloads_total", "result", "applied"); got.value != 2 {
		t.Errorf("applied reloads = %v, want 2", got.value)
	}
	if got := gather(t, reg, "audit_config_reloads_total", "result", "refused"); got.value != 1 {
		t.Errorf("refused reloads = %v, want 1", got.value)
	}
}

func TestSampleQueues(t *testing.T) {
	m := newMetrics(newClock())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := []func() (map[string]int64, error){
		func() (map[string]int64, error) {
			return map[string]int64{"wait": 7, "delayed": 1, "prioritized": 0, "active": 3, "failed": 2, "dead_letter": 4}, nil
		},
		func() (map[string]int64, error) { return nil, errors.New("redis: connection refused") },
	}
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.SampleQueues(ctx, time.Millisecond, func(context.Context) (map[string]int64, error) {
			if n == len(reads) {
				cancel()
				return nil, ctx.Err()
			}
			n++
			return reads[n-1]()
		})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SampleQueues did not return after its context ended")
	}

	reg := m.Registry()
	for state, want := range map[string]float64{"wait": 7, "active": 3, "failed": 2, "dead_letter": 4} {
		if got := gather(t, reg, "audit_queue_jobs", "state", state); got.value != want {
			t.Errorf("queue %s = %v, want %v (the failed read must keep the last good values)", state, got.value, want)
		}
	}
	if got := gather(t, reg, "audit_queue_sample_failures_total"); got.value != 1 {
		t.Errorf("sample failures = %v, want 1 (a read cut short by shutdown is no failure)", got.value)
	}
	depths, at := m.QueueDepths()
	if depths["wait"] != 7 || depths["dead_letter"] != 4 || at.IsZero() {
		t.Errorf("QueueDepths = %v at %v", depths, at)
	}
	depths["wait"] = 1000 // the snapshot is a copy
	if again, _ := m.QueueDepths(); again["wait"] != 7 {
		t.Error("QueueDepths handed out its own map")
	}
}

func TestRegistryHasRuntimeCollectorsAndLintsClean(t *testing.T) {
	m := newMetrics(newClock())
	m.ObserveBatch(context.Background(), report(time.Now(), stored(time.Second)))
	m.BreakerChanged(pipeline.BreakerClosed, pipeline.BreakerOpen)
	m.BatchRetried(1, nil)
	m.ConfigReload("applied")
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !gather(t, m.Registry(), name).found {
			t.Errorf("%s missing: the Go and process collectors must be registered", name)
		}
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "audit_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestHandlerServesExposition(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	m.ObserveBatch(context.Background(), report(c.Now(), stored(time.Second)))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		"# TYPE audit_events_stored_total counter", "audit_events_stored_total 1",
		`audit_stage_duration_seconds_bucket{stage="store",le="0.025"} 1`, "go_goroutines",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// The observer runs on the processor's path: its cost must not grow with the
// batch (no allocation per event).
func TestObserveBatchAllocatesNothingPerEvent(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	events := make([]ev, 1000)
	for i := range events {
		events[i] = stored(time.Duration(i) * time.Millisecond)
	}
	events[10] = rejected(audit.ReasonValidation)
	events[20] = dup()
	r := report(c.Now(), events...)
	m.ObserveBatch(context.Background(), r) // bind the label values once
	allocs := testing.AllocsPerRun(50, func() { m.ObserveBatch(context.Background(), r) })
	if allocs > 2 {
		t.Errorf("ObserveBatch of 1000 events allocates %v times, want at most 2", allocs)
	}
}

// BenchmarkObserveBatch is the observer's cost per batch of 1000 stored
// events, to set against the processor's (pipeline.BenchmarkProcessTelemetry).
func BenchmarkObserveBatch(b *testing.B) {
	c := newClock()
	m := newMetrics(c)
	r := report(c.Now(), storedN(1000, 50*time.Millisecond)...)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveBatch(context.Background(), r)
	}
}

func TestEndToEndLatencyIgnoresClockSkewAndUnknownArrival(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	r := report(c.Now(), stored(-time.Second), stored(time.Second))
	r.Inputs[1].ReceivedAt = time.Time{} // the source did not say when it got the event
	m.ObserveBatch(context.Background(), r)
	if got := gather(t, m.Registry(), "audit_end_to_end_latency_seconds"); got.count != 1 || got.sum != 0 {
		t.Errorf("end-to-end = %+v, want one observation of 0 (a producer clock ahead of ours)", got)
	}
	if got := gather(t, m.Registry(), "audit_events_stored_total"); got.value != 2 {
		t.Errorf("stored = %v, want 2 whatever their timestamps", got.value)
	}
}
