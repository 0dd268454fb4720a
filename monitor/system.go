package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
)

// Signals is a snapshot of the worker's own health, read by the wiring.
type Signals struct {
	ErrorRate            float64 // share of failed events over the last minute, 0–1
	LatencyP95Ms         float64 // processing latency, 95th percentile, milliseconds
	QueueDepth           int64   // jobs waiting (wait + prioritized)
	DeadLetterDepth      int64   // entries in the dead-letter queue
	BreakerState         string  // the store circuit breaker's state, e.g. "OPEN"
	ConfigReloadFailures int64   // refused configuration versions since start
}

// Thresholds are the system monitor's alert levels; a zero (or negative) one
// disables its check.
type Thresholds struct {
	ErrorRate           float64 // alert when the error rate is above it
	ProcessingLatencyMs float64 // alert when the p95 latency is above it
	QueueDepth          int64   // alert when the queue is deeper (CRITICAL at 5×)
	DeadLetterDepth     int64   // alert when the dead-letter queue holds at least this many
}

// Stable DedupKeys: a persisting condition updates one open alert.
const (
	DedupErrorRate       = "SYSTEM:error_rate"
	DedupLatency         = "SYSTEM:processing_latency"
	DedupQueueDepth      = "SYSTEM:queue_depth"
	DedupDeadLetterDepth = "SYSTEM:dead_letter_depth"
	DedupCircuitBreaker  = "SYSTEM:circuit_breaker"
	DedupConfigReload    = "SYSTEM:config_reload"
)

// queueCriticalFactor: a queue this many times deeper than its threshold is critical.
const queueCriticalFactor = 5

// SystemOptions are a SystemMonitor's collaborators.
type SystemOptions struct {
	Signals  func(ctx context.Context) (Signals, error) // required
	Alerts   audit.AlertStore                           // required
	Notifier Notifier                                   // optional
	Logger   *slog.Logger                               // nil: discard
	// Registerer receives the metrics; nil: not registered.
	Registerer prometheus.Registerer
	Interval   time.Duration    // between evaluations; default 30s
	Timeout    time.Duration    // bounds one evaluation; default 5s
	Now        func() time.Time // nil: time.Now
}

// SystemMonitor raises SYSTEM and PERFORMANCE alerts from the worker's signals.
type SystemMonitor struct {
	signals    func(ctx context.Context) (Signals, error)
	raiser     raiser
	m          *metrics
	log        *slog.Logger
	now        func() time.Time
	timeout    time.Duration
	interval   atomic.Int64 // nanoseconds
	thresholds atomic.Pointer[Thresholds]

	mu          sync.Mutex // serializes evaluations
	lastReloads int64      // ConfigReloadFailures at the previous evaluation
}

// NewSystemMonitor returns a SystemMonitor; Run starts it.
func NewSystemMonitor(th Thresholds, o SystemOptions) (*SystemMonitor, error) {
	if o.Signals == nil || o.Alerts == nil {
		return nil, errors.New("monitor: Signals and Alerts are required")
	}
	r, err := newRaiser(SourceSystemMonitor, o.Alerts, o.Notifier, o.Logger, o.Registerer)
	if err != nil {
		return nil, err
	}
	s := &SystemMonitor{
		signals: o.Signals,
		raiser:  r,
		m:       r.m,
		log:     r.log,
		now:     o.Now,
		timeout: o.Timeout,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	s.SetInterval(o.Interval)
	s.SetThresholds(th)
	return s, nil
}

// SetThresholds replaces the thresholds (a config reload).
func (s *SystemMonitor) SetThresholds(th Thresholds) { s.thresholds.Store(&th) }

// SetInterval changes the time between evaluations from the next one on;
// zero or negative means the default, 30s.
func (s *SystemMonitor) SetInterval(d time.Duration) {
	if d <= 0 {
		d = 30 * time.Second
	}
	s.interval.Store(int64(d))
}

// Run evaluates every interval until ctx ends, then returns nil; an
// evaluation in progress is cut short by ctx. The caller owns the goroutine
// and waits for Run to return.
func (s *SystemMonitor) Run(ctx context.Context) error {
	t := time.NewTimer(time.Duration(s.interval.Load()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Evaluate(ctx)
			t.Reset(time.Duration(s.interval.Load()))
		}
	}
}

// Evaluate reads the signals once and raises a condition for every threshold
// crossed; it returns the conditions it raised (whether the store took them
// or not). Signals that cannot be read skip the round.
func (s *SystemMonitor) Evaluate(ctx context.Context) []audit.AlertCondition {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sig, err := s.signals(ctx)
	if err != nil {
		s.m.signalErrors.Inc()
		s.log.WarnContext(ctx, "system monitor: signals unavailable, round skipped", "err", err)
		return nil
	}
	conds := s.check(sig, *s.thresholds.Load())
	for _, c := range conds {
		s.raiser.raise(ctx, c)
	}
	return conds
}

// check compares the signals with the thresholds.
func (s *SystemMonitor) check(sig Signals, th Thresholds) []audit.AlertCondition {
	now := s.now()
	// A persisting condition is seen again every interval; the window must
	// outlast a few of them so it keeps updating one alert.
	window := max(15*time.Minute, 3*time.Duration(s.interval.Load()))
	var out []audit.AlertCondition
	add := func(key string, typ audit.AlertType, sev audit.Severity, title, desc string, value, threshold any) {
		meta, _ := json.Marshal(map[string]any{"signal": strings.TrimPrefix(key, "SYSTEM:"), "value": value, "threshold": threshold})
		out = append(out, audit.AlertCondition{
			Type: typ, Severity: sev, DedupKey: key, DedupWindow: window,
			Title: title, Description: desc, Metadata: meta,
			Tags: []string{"system", strings.TrimPrefix(key, "SYSTEM:")}, ObservedAt: now,
		})
	}
	if th.ErrorRate > 0 && sig.ErrorRate > th.ErrorRate {
		add(DedupErrorRate, audit.AlertSystem, audit.SeverityHigh, "Error rate above threshold",
			fmt.Sprintf("error rate %.1f%% over the last minute is above the threshold %.1f%%", 100*sig.ErrorRate, 100*th.ErrorRate),
			sig.ErrorRate, th.ErrorRate)
	}
	if th.ProcessingLatencyMs > 0 && sig.LatencyP95Ms > th.ProcessingLatencyMs {
		add(DedupLatency, audit.AlertPerformance, audit.SeverityMedium, "Processing latency above threshold",
			fmt.Sprintf("p95 processing latency %.0f ms is above the threshold %.0f ms", sig.LatencyP95Ms, th.ProcessingLatencyMs),
			sig.LatencyP95Ms, th.ProcessingLatencyMs)
	}
	if th.QueueDepth > 0 && sig.QueueDepth > th.QueueDepth {
		sev := audit.SeverityMedium
		if sig.QueueDepth >= queueCriticalFactor*th.QueueDepth {
			sev = audit.SeverityCritical
		}
		add(DedupQueueDepth, audit.AlertPerformance, sev, "Queue depth above threshold",
			fmt.Sprintf("%d jobs waiting, above the threshold %d", sig.QueueDepth, th.QueueDepth),
			sig.QueueDepth, th.QueueDepth)
	}
	if th.DeadLetterDepth > 0 && sig.DeadLetterDepth >= th.DeadLetterDepth {
		add(DedupDeadLetterDepth, audit.AlertSystem, audit.SeverityHigh, "Dead-letter queue at threshold",
			fmt.Sprintf("%d events in the dead-letter queue, threshold %d", sig.DeadLetterDepth, th.DeadLetterDepth),
			sig.DeadLetterDepth, th.DeadLetterDepth)
	}
	if strings.EqualFold(sig.BreakerState, "OPEN") {
		add(DedupCircuitBreaker, audit.AlertSystem, audit.SeverityCritical, "Store circuit breaker open",
			"the circuit breaker guarding the event store is open: events are not being stored",
			sig.BreakerState, "OPEN")
	}
	if sig.ConfigReloadFailures > s.lastReloads {
		add(DedupConfigReload, audit.AlertSystem, audit.SeverityMedium, "Configuration reload failed",
			fmt.Sprintf("%d new configuration version(s) refused since the last check (%d since start)",
				sig.ConfigReloadFailures-s.lastReloads, sig.ConfigReloadFailures),
			sig.ConfigReloadFailures, s.lastReloads)
	}
	s.lastReloads = sig.ConfigReloadFailures
	return out
}
