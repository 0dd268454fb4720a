package monitor

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	audit "github.com/smartlogs/audit-worker"
)

func newSystem(t *testing.T, th Thresholds, sig *atomic.Pointer[Signals]) (*SystemMonitor, *fakeAlerts) {
	t.Helper()
	alerts := newFakeAlerts()
	s, err := NewSystemMonitor(th, SystemOptions{
		Signals: func(context.Context) (Signals, error) {
			p := sig.Load()
			if p == nil {
				return Signals{}, errors.New("queue unreachable")
			}
			return *p, nil
		},
		Alerts: alerts, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, alerts
}

var defaultThresholds = Thresholds{ErrorRate: 0.1, ProcessingLatencyMs: 5000, QueueDepth: 100, DeadLetterDepth: 10}

func TestSystemThresholds(t *testing.T) {
	type want struct {
		key string
		typ audit.AlertType
		sev audit.Severity
	}
	cases := []struct {
		name string
		sig  Signals
		want []want
	}{
		{"all at threshold", Signals{ErrorRate: 0.1, LatencyP95Ms: 5000, QueueDepth: 100, DeadLetterDepth: 9, BreakerState: "CLOSED"}, nil},
		{"error rate", Signals{ErrorRate: 0.11}, []want{{DedupErrorRate, audit.AlertSystem, audit.SeverityHigh}}},
		{"latency", Signals{LatencyP95Ms: 5001}, []want{{DedupLatency, audit.AlertPerformance, audit.SeverityMedium}}},
		{"queue depth", Signals{QueueDepth: 101}, []want{{DedupQueueDepth, audit.AlertPerformance, audit.SeverityMedium}}},
		{"queue depth 5x", Signals{QueueDepth: 500}, []want{{DedupQueueDepth, audit.AlertPerformance, audit.SeverityCritical}}},
		{"queue just under 5x", Signals{QueueDepth: 499}, []want{{DedupQueueDepth, audit.AlertPerformance, audit.SeverityMedium}}},
		{"dead letters", Signals{DeadLetterDepth: 10}, []want{{DedupDeadLetterDepth, audit.AlertSystem, audit.SeverityHigh}}},
		{"breaker open", Signals{BreakerState: "OPEN"}, []want{{DedupCircuitBreaker, audit.AlertSystem, audit.SeverityCritical}}},
		{"breaker half open", Signals{BreakerState: "HALF_OPEN"}, nil},
		{"config reload", Signals{ConfigReloadFailures: 1}, []want{{DedupConfigReload, audit.AlertSystem, audit.SeverityMedium}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sig atomic.Pointer[Signals]
			sig.Store(&tc.sig)
			s, alerts := newSystem(t, defaultThresholds, &sig)
			got := s.Evaluate(context.Background())
			if len(got) != len(tc.want) || len(alerts.conditions()) != len(tc.want) {
				t.Fatalf("raised %v, want %v", keysOf(got), tc.want)
			}
			for i, w := range tc.want {
				c := got[i]
				if c.DedupKey != w.key || c.Type != w.typ || c.Severity != w.sev || c.Source != "" && c.Source != SourceSystemMonitor ||
					c.OrganizationID != "" || !c.ObservedAt.Equal(t0) || c.DedupWindow < 15*time.Minute || len(c.Metadata) == 0 {
					t.Errorf("condition %+v, want %+v", c, w)
				}
			}
			for _, c := range alerts.conditions() {
				if c.Source != SourceSystemMonitor {
					t.Errorf("source %q", c.Source)
				}
			}
		})
	}
}

func TestSystemPersistingConditionUpdatesOneAlert(t *testing.T) {
	var sig atomic.Pointer[Signals]
	sig.Store(&Signals{QueueDepth: 150, BreakerState: "OPEN", ConfigReloadFailures: 2})
	s, alerts := newSystem(t, defaultThresholds, &sig)
	s.Evaluate(context.Background())
	s.Evaluate(context.Background())
	s.Evaluate(context.Background())
	if n := alerts.occurrences(DedupQueueDepth); n != 3 {
		t.Errorf("queue depth alert has %d occurrences, want 3", n)
	}
	if n := alerts.occurrences(DedupCircuitBreaker); n != 3 {
		t.Errorf("breaker alert has %d occurrences, want 3", n)
	}
	// The reload failures were seen once; only a new one raises again.
	if n := alerts.occurrences(DedupConfigReload); n != 1 {
		t.Errorf("config reload alert has %d occurrences, want 1", n)
	}
	sig.Store(&Signals{ConfigReloadFailures: 3})
	if got := keysOf(s.Evaluate(context.Background())); !slices.Equal(got, []string{DedupConfigReload}) {
		t.Errorf("raised %v, want the new reload failure only", got)
	}
}

func TestSystemSetThresholds(t *testing.T) {
	var sig atomic.Pointer[Signals]
	sig.Store(&Signals{ErrorRate: 0.2, QueueDepth: 150})
	s, _ := newSystem(t, defaultThresholds, &sig)
	if n := len(s.Evaluate(context.Background())); n != 2 {
		t.Fatalf("%d conditions, want 2", n)
	}
	s.SetThresholds(Thresholds{ErrorRate: 0.5, QueueDepth: 0}) // 0 disables
	if got := s.Evaluate(context.Background()); len(got) != 0 {
		t.Fatalf("raised %v after raising the thresholds", keysOf(got))
	}
}

func TestSystemSignalsUnavailable(t *testing.T) {
	var sig atomic.Pointer[Signals]
	s, alerts := newSystem(t, defaultThresholds, &sig)
	if got := s.Evaluate(context.Background()); got != nil || len(alerts.conditions()) != 0 {
		t.Fatalf("raised %v without signals", keysOf(got))
	}
	if v := testutil.ToFloat64(s.m.signalErrors); v != 1 {
		t.Fatalf("signal errors %v, want 1", v)
	}
}

// Run evaluates once per interval; a new interval applies from the
// evaluation after the one already due.
func TestSystemRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sig atomic.Pointer[Signals]
		sig.Store(&Signals{BreakerState: "OPEN"}) // every evaluation raises the breaker's alert once
		s, alerts := newSystem(t, defaultThresholds, &sig)
		s.SetInterval(30 * time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		start := time.Now()
		go func() { s.Run(ctx); close(done) }()
		for _, step := range []struct {
			at          time.Duration
			setInterval time.Duration // 0: unchanged
			evaluations int64
		}{
			{at: 29 * time.Second, evaluations: 0},
			{at: 30 * time.Second, evaluations: 1},
			{at: 60 * time.Second, evaluations: 2, setInterval: 5 * time.Second},
			{at: 89 * time.Second, evaluations: 2},
			{at: 90 * time.Second, evaluations: 3},
			{at: 95 * time.Second, evaluations: 4},
		} {
			time.Sleep(step.at - time.Since(start))
			synctest.Wait() // an evaluation due now has finished
			if got := alerts.occurrences(DedupCircuitBreaker); got != step.evaluations {
				t.Fatalf("at %s: %d evaluations, want %d", step.at, got, step.evaluations)
			}
			if step.setInterval > 0 {
				s.SetInterval(step.setInterval)
			}
		}
		cancel()
		<-done
	})
}
