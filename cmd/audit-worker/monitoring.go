package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/monitor"
	"github.com/smartlogs/audit-worker/notify"
	"github.com/smartlogs/audit-worker/telemetry"
)

// monitorConfig maps monitoring.patternDetection to the detectors' configuration.
func monitorConfig(cfg config.Config) monitor.Config {
	pd := cfg.Monitoring.PatternDetection
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	return monitor.Config{
		FailedAuth:         monitor.Rule{Threshold: pd.FailedAuthThreshold, Window: ms(pd.FailedAuthTimeWindow)},
		UnauthorizedAccess: monitor.Rule{Threshold: pd.UnauthorizedAccessThreshold, Window: ms(pd.UnauthorizedAccessTimeWindow)},
		DataVelocity:       monitor.Rule{Threshold: pd.DataAccessVelocityThreshold, Window: ms(pd.DataAccessTimeWindow)},
		BulkOperation:      monitor.Rule{Threshold: pd.BulkOperationThreshold, Window: ms(pd.BulkOperationTimeWindow)},
		OffHoursStart:      pd.OffHoursStart,
		OffHoursEnd:        pd.OffHoursEnd,
		TimeZones:          pd.OrganizationTimeZones,
		DefaultTimeZone:    pd.TimeZone,
		LateTolerance:      ms(pd.LateEventToleranceMs),
		MaxTrackedKeys:     pd.MaxTrackedKeys,
	}
}

// systemThresholds maps monitoring.alertThresholds (and the dead-letter alert
// threshold) to the system monitor's.
func systemThresholds(cfg config.Config) monitor.Thresholds {
	t := cfg.Monitoring.AlertThresholds
	return monitor.Thresholds{
		ErrorRate: t.ErrorRate, ProcessingLatencyMs: float64(t.ProcessingLatency),
		QueueDepth: int64(t.QueueDepth), DeadLetterDepth: int64(cfg.ReliableProcessor.DeadLetterConfig.AlertThreshold),
	}
}

func healthCheckInterval(cfg config.Config) time.Duration {
	return time.Duration(cfg.Monitoring.HealthCheckInterval) * time.Millisecond
}

// monitoring is the alerting side of the worker: the notifier, the pattern
// detectors and the system monitor.
type monitoring struct {
	notifier *notify.Notifier
	patterns *monitor.Monitor       // nil when monitoring is disabled
	system   *monitor.SystemMonitor // nil when monitoring is disabled
	stop     context.CancelFunc     // ends the background loops; nil until run
	loops    sync.WaitGroup         // the background loops, done when they have ended
}

// alertFoldInterval bounds how often a persisting condition's repeats are
// written to the alert store (see monitor.Options.FoldInterval): under a
// sustained burst, one write per alert per interval instead of one per batch.
const alertFoldInterval = 5 * time.Second

// startMonitoring builds the notifier and the detectors (their state: see
// patternState).
func startMonitoring(cfg config.Config, store audit.EventStore, rdb redis.UniversalClient, obs *observability, w *worker) (*monitoring, error) {
	recorder, _ := store.(audit.DeliveryRecorder)
	m := &monitoring{}
	var err error
	m.notifier, err = notify.New(notify.Options{Webhooks: webhooks(cfg), Recorder: recorder, Registerer: obs.registerer(), Logger: w.log})
	if err != nil {
		return nil, fmt.Errorf("monitoring.notification: %w", err)
	}
	alerts, ok := store.(audit.AlertStore)
	if !cfg.Monitoring.Enabled || !ok {
		return m, nil
	}
	state, err := patternState(cfg, rdb)
	if err != nil {
		return nil, err
	}
	m.patterns, err = monitor.New(monitorConfig(cfg), monitor.Options{
		State: state, Alerts: alerts, Notifier: m.notifier, Logger: w.log, Registerer: obs.registerer(),
		FoldInterval: alertFoldInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("monitoring.patternDetection: %w", err)
	}
	m.system, err = monitor.NewSystemMonitor(systemThresholds(cfg), monitor.SystemOptions{
		Signals: w.signals, Alerts: alerts, Notifier: m.notifier, Logger: w.log,
		Registerer: obs.registerer(), Interval: healthCheckInterval(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("monitoring: %w", err)
	}
	return m, nil
}

// run starts the background loops, folded repeats and the system alerts,
// through spawn, which owns them. They have their own context, ended by
// close after the last batch, so that the repeats of the last batches are
// written too.
func (m *monitoring) run(spawn func(name string, fn func() error)) {
	if m.patterns == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.loops.Add(2)
	spawn("alert folding", func() error {
		defer m.loops.Done()
		m.patterns.Run(ctx)
		return nil
	})
	spawn("system monitor", func() error {
		defer m.loops.Done()
		return m.system.Run(ctx)
	})
}

// close writes what is pending and stops the loops, waiting for them, then
// lets the notifier deliver within ctx. A loop stops promptly: its last
// flush is bounded by the monitor's own timeout.
func (m *monitoring) close(ctx context.Context) error {
	if m.stop != nil {
		m.stop()
		m.loops.Wait()
	}
	return m.notifier.Close(ctx)
}

// signals is what the system monitor judges: the last minute of the pipeline,
// the queue depths, the breaker and refused configuration versions.
func (w *worker) signals(ctx context.Context) (monitor.Signals, error) {
	r := w.obs.recent()
	s := monitor.Signals{ErrorRate: r.ErrorRate, LatencyP95Ms: r.LatencyP95Ms, BreakerState: string(w.breaker.State())}
	s.ConfigReloadFailures = w.rejectedConfigs()
	if w.queue != nil {
		depths, err := w.queue.depths(ctx)
		if err != nil {
			return s, fmt.Errorf("queue depths: %w", err)
		}
		s.QueueDepth = depths["wait"] + depths["prioritized"]
		s.DeadLetterDepth = depths[telemetry.QueueDeadLetter]
	}
	return s, nil
}

// apply hands a reloaded configuration to the detectors and the notifier. The
// configuration was validated as a whole, so an error here is unexpected; the
// part that refuses keeps its previous settings.
func (m *monitoring) apply(cfg config.Config) error {
	if err := m.notifier.SetWebhooks(webhooks(cfg)...); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	if m.patterns == nil {
		return nil
	}
	m.system.SetThresholds(systemThresholds(cfg))
	m.system.SetInterval(healthCheckInterval(cfg))
	return m.patterns.SetConfig(monitorConfig(cfg))
}

// patternState is how the detectors' windows are kept
// (monitoring.patternDetection.state): shared through a log in Redis, so that
// worker replicas count together, or in this process's memory only, which is
// exact only with a single worker. "auto" takes Redis when the worker uses it.
func patternState(cfg config.Config, rdb redis.UniversalClient) (monitor.State, error) {
	switch choice := cfg.Monitoring.PatternDetection.State; {
	case choice == "memory" || (choice == "auto" && rdb == nil):
		return monitor.NewMemoryState(), nil
	case rdb == nil:
		// Refused by config validation already; kept for callers that skip it.
		return nil, fmt.Errorf("monitoring.patternDetection.state is %q but the worker uses no Redis", choice)
	}
	state, err := monitor.NewRedisState(rdb, cfg.Redis.KeyPrefix+":audit:")
	if err != nil {
		return nil, fmt.Errorf("monitoring.patternDetection.state: %w", err)
	}
	return state, nil
}
