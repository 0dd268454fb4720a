package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

// reloadable lists the settings a running worker applies without a restart, by
// path prefix. Everything else (connections, ports, queue names, the data
// directory) is reported as pending until the next restart.
var reloadable = []string{
	"logging.level",
	"monitoring.",
	"reliableProcessor.concurrency",
	"reliableProcessor.batchSize",
	"reliableProcessor.circuitBreakerConfig.",
	"reliableProcessor.deadLetterConfig.alertThreshold",
	"storage.batchMaxSize",
	"storage.batchMaxWaitMs",
	"validation.",
	"security.encryptionKey",
	"http.apiKeys",
}

// restartOnly are exceptions inside the reloadable prefixes: turning the
// detectors on or off changes what observes the pipeline, and where their
// windows live is chosen once; both are fixed at start.
var restartOnly = []string{"monitoring.enabled", "monitoring.patternDetection.state"}

func isReloadable(path string) bool {
	if slices.Contains(restartOnly, path) {
		return false
	}
	for _, p := range reloadable {
		if path == p || (strings.HasSuffix(p, ".") && strings.HasPrefix(path, p)) ||
			strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// reloader watches the configuration source and applies each new, valid version
// to the running worker.
type reloader struct {
	w      *worker
	source config.Source
	cache  string

	mu             sync.Mutex
	running        config.Config // what the worker was started with, for pending-restart fields
	current        config.Config // the latest applied version
	meta           config.Meta
	degraded       bool
	lastApplied    time.Time
	pendingRestart []string
	watcher        *config.Watcher
}

func newReloader(w *worker, lc loadedConfig) *reloader {
	return &reloader{w: w, source: lc.source, cache: configCachePath(), running: lc.cfg, current: lc.cfg,
		meta: lc.loaded.Meta, degraded: lc.loaded.Degraded}
}

// watch polls (S3) or watches (files) the source until ctx ends.
func (r *reloader) watch(ctx context.Context) {
	r.mu.Lock()
	r.watcher = config.NewWatcher(r.source, r.apply, config.WatcherOptions{
		Interval:  r.current.PollInterval(),
		CachePath: r.cache,
		Start:     config.Loaded{Config: r.current, Meta: r.meta, Degraded: r.degraded},
		Logger:    r.w.log,
		OnRefused: func(error) { r.w.obs.configReloaded("refused") },
	})
	watcher := r.watcher
	r.mu.Unlock()
	if err := watcher.Run(ctx); err != nil {
		r.w.log.Error("configuration watcher stopped", "err", err)
	}
}

// apply is called by the watcher with a new version that passed validation.
func (r *reloader) apply(next config.Config, meta config.Meta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changes := diffConfig(r.current, next)
	var applied, pending []string
	for _, c := range changes {
		if isReloadable(c.path) {
			applied = append(applied, c.path)
		} else {
			pending = append(pending, c.path)
		}
	}
	r.w.applyReloadable(next)
	r.current, r.meta, r.degraded, r.lastApplied = next, meta, false, time.Now()
	// Pending is measured against what the worker runs, so reverting a restart-
	// only change clears it.
	r.pendingRestart = nil
	for _, c := range diffConfig(r.running, next) {
		if !isReloadable(c.path) {
			r.pendingRestart = append(r.pendingRestart, c.path)
		}
	}
	for _, c := range changes {
		r.w.log.Info("configuration changed", "field", c.path, "from", c.from, "to", c.to,
			"applied", isReloadable(c.path))
	}
	r.w.log.Info("configuration reloaded", "source", meta.Source, "version", meta.Version,
		"applied", applied, "pendingRestart", pending)
	result := "applied"
	if len(pending) > 0 {
		result = "restart_required"
	}
	r.w.obs.configReloaded(result)
}

// rejected is how many configuration versions were refused since start.
func (r *reloader) rejected() int64 {
	r.mu.Lock()
	watcher := r.watcher
	r.mu.Unlock()
	if watcher == nil {
		return 0
	}
	return watcher.Rejected()
}

// applyReloadable hands the reloadable settings to the parts that use them.
func (w *worker) applyReloadable(c config.Config) {
	if w.level != nil && telemetry.SetLevel(w.level, c.Logging.Level) != nil {
		w.log.Warn("log level not applied", "level", c.Logging.Level)
	}
	w.breaker.Reconfigure(c.ReliableProcessor.CircuitBreakerConfig.FailureThreshold, c.RecoveryTimeout())
	w.proc.Reconfigure(pipeline.Config{Rules: c.Rules(), HMACKey: []byte(c.Security.EncryptionKey), Breaker: w.breaker})
	w.batcher.SetLimits(c.Storage.BatchMaxSize, c.BatchMaxWait())
	if len(c.HTTP.APIKeys) > 0 { // without configured keys the generated key file stays in force
		w.api.SetAPIKeys(c.HTTP.APIKeys)
	}
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

// ConfigStatus implements httpapi.ConfigReporter.
func (w *worker) ConfigStatus() any {
	if w.reload == nil {
		return map[string]any{"source": "embedded default", "pendingRestart": []string{}}
	}
	r := w.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]any{
		"source": r.source.String(), "version": r.meta.Version, "loadedAt": r.meta.Time,
		"fromCache": r.meta.FromCache, "degraded": r.degraded,
		"pendingRestart": append([]string{}, r.pendingRestart...),
	}
	if !r.lastApplied.IsZero() {
		out["lastReload"] = r.lastApplied
	}
	if r.watcher != nil {
		st := r.watcher.Status()
		out["lastCheck"], out["lastError"], out["rejected"], out["watchMode"] = st.LastCheck, st.LastError, st.Rejected, st.Mode
		out["degraded"] = st.Degraded
	}
	return out
}

// ConfigHealth implements httpapi.ConfigReporter.
func (w *worker) ConfigHealth() (bool, string) {
	if w.reload == nil {
		return true, ""
	}
	r := w.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	degraded, lastErr := r.degraded, ""
	if r.watcher != nil {
		st := r.watcher.Status()
		degraded, lastErr = st.Degraded, st.LastError
	}
	switch {
	case degraded:
		return false, "degraded: running on the cached configuration, the source is unreachable"
	case lastErr != "":
		return false, "the latest configuration version was refused: " + lastErr
	}
	return true, ""
}

// change is one configuration field that differs, values masked.
type change struct{ path, from, to string }

// diffConfig lists the fields that differ between two configurations, as
// dotted paths, with secrets masked (Masked replaces them with ***, so a
// changed secret shows as changed without showing its value).
func diffConfig(a, b config.Config) []change {
	fa, fb := flatten(a), flatten(b)
	ma, mb := flatten(a.Masked()), flatten(b.Masked())
	var out []change
	seen := map[string]bool{}
	for _, m := range []map[string]string{fa, fb} {
		for path := range m {
			if seen[path] {
				continue
			}
			seen[path] = true
			if fa[path] != fb[path] {
				from, to := ma[path], mb[path]
				if from == to { // both masked: say that it changed without showing it
					from, to = "***", "*** (changed)"
				}
				out = append(out, change{path: path, from: from, to: to})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// flatten turns a configuration into dotted paths (arrays as path[i]) and the
// JSON text of their values.
func flatten(c config.Config) map[string]string {
	data, _ := json.Marshal(c)
	var v any
	_ = json.Unmarshal(data, &v)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, t[k])
			}
		case []any:
			out[prefix] = fmt.Sprint(len(t)) + " items"
			for i, e := range t {
				walk(fmt.Sprintf("%s[%d]", prefix, i), e)
			}
		default:
			b, _ := json.Marshal(t)
			out[prefix] = string(b)
		}
	}
	walk("", v)
	return out
}
