package monitor

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Alert sources, the Source of the conditions each monitor raises.
const (
	SourcePatternDetector = "pattern-detector"
	SourceSystemMonitor   = "system-monitor"
)

// metrics are shared by Monitor and SystemMonitor when both register on one
// registry: the second registration reuses the first one's collectors.
type metrics struct {
	evaluated     prometheus.Counter
	detected      *prometheus.CounterVec // pattern
	raised        *prometheus.CounterVec // source, created ("true": a new alert)
	folded        prometheus.Counter
	raiseFailures *prometheus.CounterVec // source
	late          *prometheus.CounterVec // pattern
	capHits       prometheus.Counter
	stateErrors   prometheus.Counter
	panics        prometheus.Counter
	batch         prometheus.Histogram
	signalErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		evaluated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_monitor_events_evaluated_total",
			Help: "Accepted events the pattern detectors evaluated.",
		}),
		detected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_monitor_patterns_detected_total",
			Help: "Events that brought a detector's window to its threshold (or started an off-hours night), by pattern.",
		}, []string{"pattern"}),
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_monitor_alerts_raised_total",
			Help: "Alert conditions the alert store accepted, by source and whether they created a new alert.",
		}, []string{"source", "created"}),
		folded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_monitor_alerts_folded_total",
			Help: "Repeats of a recently written alert condition folded into its next write.",
		}),
		raiseFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_monitor_alerts_failed_total",
			Help: "Alert conditions the alert store failed to take (logged and dropped), by source.",
		}, []string{"source"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_monitor_late_events_total",
			Help: "Events too old for a detector's window plus the late tolerance, not counted, by pattern.",
		}, []string{"pattern"}),
		capHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_monitor_tracked_key_cap_hits_total",
			Help: "Detector keys dropped early because maxTrackedKeys was reached.",
		}),
		stateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_monitor_state_errors_total",
			Help: "Batches the detectors could not evaluate because their state (Redis) failed.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_monitor_panics_total",
			Help: "Batches the pattern detectors gave up on because of a bug (a recovered panic, logged with its stack); their events are stored regardless.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "audit_monitor_batch_duration_seconds",
			Help:    "Time the pattern detectors spent on one batch, alerts included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 0.1ms … 6.5s
		}),
		signalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_monitor_system_signal_errors_total",
			Help: "System monitor rounds skipped because the signals could not be read.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	reuse := func(c prometheus.Collector) prometheus.Collector {
		if err != nil {
			return c
		}
		e := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		if errors.As(e, &are) {
			return are.ExistingCollector
		}
		if e != nil {
			err = fmt.Errorf("monitor: register metrics: %w", e)
		}
		return c
	}
	m.evaluated = reuse(m.evaluated).(prometheus.Counter)
	m.detected = reuse(m.detected).(*prometheus.CounterVec)
	m.raised = reuse(m.raised).(*prometheus.CounterVec)
	m.folded = reuse(m.folded).(prometheus.Counter)
	m.raiseFailures = reuse(m.raiseFailures).(*prometheus.CounterVec)
	m.late = reuse(m.late).(*prometheus.CounterVec)
	m.capHits = reuse(m.capHits).(prometheus.Counter)
	m.stateErrors = reuse(m.stateErrors).(prometheus.Counter)
	m.panics = reuse(m.panics).(prometheus.Counter)
	m.batch = reuse(m.batch).(prometheus.Histogram)
	m.signalErrors = reuse(m.signalErrors).(prometheus.Counter)
	return m, err
}

// registerLogStats exports RedisState.LogStats: other workers' ops applied
// to this process's windows, and log entries it could not read.
func registerLogStats(reg prometheus.Registerer, s *RedisState) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "audit_monitor_state_replayed_ops_total",
			Help: "Detector ops logged by other workers (or by this one, when a reply was lost) and applied to this process's windows (Redis).",
		}, func() float64 { r, _ := s.LogStats(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "audit_monitor_state_malformed_entries_total",
			Help: "Entries of the shared detector log this process could not read and skipped (Redis).",
		}, func() float64 { _, m := s.LogStats(); return float64(m) }),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("monitor: register metrics: %w", err)
			}
		}
	}
	return nil
}
