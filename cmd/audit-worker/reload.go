package main

import (
	"sync"
	"time"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

// reloader follows the configuration source and applies each new, valid
// version to the running worker: config.Diff says what changed and when each
// change takes effect; the reloader hands the reloadable fields over.
type reloader struct {
	w       *worker
	source  config.Source
	watcher *config.Watcher // run by the worker (see worker.start)

	mu             sync.Mutex
	running        config.Config // what the worker was started with, for pending-restart fields
	current        config.Config // the latest applied version
	meta           config.Meta
	lastApplied    time.Time
	pendingRestart []string
}

func newReloader(w *worker, lc loadedConfig) *reloader {
	r := &reloader{w: w, source: lc.source, running: lc.cfg, current: lc.cfg, meta: lc.loaded.Meta}
	r.watcher = config.NewWatcher(lc.source, r.apply, config.WatcherOptions{
		Interval:  lc.cfg.PollInterval(),
		CachePath: configCachePath(),
		Start:     lc.loaded,
		Logger:    w.log,
		OnRefused: func(error) { w.obs.configReloaded("refused") },
	})
	return r
}

// apply is called by the watcher with a new version that passed validation.
func (r *reloader) apply(next config.Config, meta config.Meta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changes := config.Diff(r.current, next)
	r.w.applyReloadable(next)
	r.current, r.meta, r.lastApplied = next, meta, time.Now()
	// Pending is measured against what the worker runs, so reverting a restart-
	// only change clears it.
	r.pendingRestart = restartPaths(config.Diff(r.running, next))

	var applied, pending []string
	for _, c := range changes {
		r.w.log.Info("configuration changed", "field", c.Path, "from", c.Old, "to", c.New,
			"applied", !c.NeedsRestart())
		if c.NeedsRestart() {
			pending = append(pending, c.Path)
		} else {
			applied = append(applied, c.Path)
		}
	}
	r.w.log.Info("configuration reloaded", "source", meta.Source, "version", meta.Version,
		"applied", applied, "pendingRestart", pending)
	result := "applied"
	if len(pending) > 0 {
		result = "restart_required"
	}
	r.w.obs.configReloaded(result)
}

// restartPaths are the paths of the changes that wait for a restart.
func restartPaths(changes []config.Change) []string {
	var out []string
	for _, c := range changes {
		if c.NeedsRestart() {
			out = append(out, c.Path)
		}
	}
	return out
}

// applyReloadable hands the reloadable settings to the parts that use them.
func (w *worker) applyReloadable(c config.Config) {
	if w.level != nil && telemetry.SetLevel(w.level, c.Logging.Level) != nil {
		w.log.Warn("log level not applied", "level", c.Logging.Level)
	}
	w.breaker.Reconfigure(c.ReliableProcessor.CircuitBreakerConfig.FailureThreshold, c.RecoveryTimeout())
	w.proc.Reconfigure(pipeline.Config{Rules: c.Rules(), HMACKey: []byte(c.Security.EncryptionKey), Breaker: w.breaker})
	w.batcher.SetLimits(c.Storage.BatchMaxSize, c.BatchMaxWait())
	w.auth.SetStaticKeys(staticKeys(c, w.legacyKey))
	if oidc, err := newOIDC(c, w.log); err != nil {
		w.log.Warn("OIDC settings not applied", "err", err)
	} else {
		w.auth.SetOIDC(oidc)
	}
	w.limits.Reconfigure(limitConfig(c.HTTP.RateLimits))
	w.obs.apply(c)
	if err := w.mon.apply(c); err != nil {
		w.log.Warn("monitoring settings not applied", "err", err)
	}
	if w.queue != nil {
		w.queue.worker.SetConcurrency(c.ReliableProcessor.Concurrency)
		w.queue.worker.SetBatchSize(c.ReliableProcessor.BatchSize)
		w.queue.handler.SetAlertThreshold(c.ReliableProcessor.DeadLetterConfig.AlertThreshold)
	}
}

// currentConfig is the configuration in force (the latest applied version).
func (w *worker) currentConfig() config.Config {
	if w.reload == nil {
		return w.cfg
	}
	w.reload.mu.Lock()
	defer w.reload.mu.Unlock()
	return w.reload.current
}

// rejectedConfigs is how many configuration versions were refused since start.
func (w *worker) rejectedConfigs() int64 {
	if w.reload == nil {
		return 0
	}
	return w.reload.watcher.Rejected()
}

// ConfigStatus implements httpapi.ConfigReporter with configStatus.
func (w *worker) ConfigStatus() any { return w.configStatus() }

// configStatus is the document served at /observability/config.
func (w *worker) configStatus() config.ReloadStatus {
	if w.reload == nil {
		return config.ReloadStatus{Source: "embedded default", PendingRestart: []string{}}
	}
	r := w.reload
	st := r.watcher.Status()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := config.ReloadStatus{
		Source:         config.Redact(r.source.String()),
		PendingRestart: append([]string{}, r.pendingRestart...),
		SourceStatus: &config.SourceStatus{
			Version: r.meta.Version, LoadedAt: r.meta.Time, FromCache: r.meta.FromCache,
			Degraded: st.Degraded, LastCheck: st.LastCheck, LastError: st.LastError,
			Rejected: st.Rejected, WatchMode: st.Mode,
		},
	}
	if !r.lastApplied.IsZero() {
		at := r.lastApplied
		out.LastReload = &at
	}
	return out
}

// ConfigHealth implements httpapi.ConfigReporter.
func (w *worker) ConfigHealth() (bool, string) {
	if w.reload == nil {
		return true, ""
	}
	st := w.reload.watcher.Status()
	switch {
	case st.Degraded:
		return false, "degraded: running on the cached configuration, the source is unreachable"
	case st.LastError != "":
		return false, "the latest configuration version was refused: " + st.LastError
	}
	return true, ""
}
