package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/monitor"
	"github.com/smartlogs/audit-worker/notify"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

// observability is what watches the worker: metrics, traces, health checks and
// the dashboard. Every part is optional in the configuration; nil means off.
type observability struct {
	metrics   *telemetry.Metrics   // nil when observability.metrics.enabled is false
	tracing   *telemetry.Tracing   // always set; a no-op when tracing is disabled
	dashboard *telemetry.Dashboard // nil without metrics
	health    *health.Checker
}

// startObservability builds metrics and tracing; the rest needs the store and
// the queue and is added by wireObservability.
func startObservability(ctx context.Context, cfg config.Config, log *slog.Logger) (*observability, error) {
	o := &observability{}
	if cfg.Observability.Metrics.Enabled {
		o.metrics = telemetry.NewMetrics(telemetry.MetricsOptions{Logger: log})
	}
	tc := cfg.Observability.Tracing
	endpoint := ""
	if tc.ExporterType == "otlp" || tc.ExporterType == "jaeger" { // Jaeger takes OTLP
		endpoint = tc.ExporterEndpoint
	}
	var err error
	o.tracing, err = telemetry.NewTracing(ctx, telemetry.TracingConfig{
		Enabled: tc.Enabled, ServiceName: tc.ServiceName, SampleRate: tc.SampleRate,
		OTLPEndpoint: endpoint, Headers: tc.Headers, MaxSpans: tc.MaxSpans, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("start tracing: %w", config.RedactError(err))
	}
	return o, nil
}

// tracer returns a named tracer, or nil when tracing is off (no per-batch cost).
func (o *observability) tracer(name string) trace.Tracer {
	if !o.tracing.Enabled() {
		return nil
	}
	return o.tracing.Tracer(name)
}

// pipelineObservers are the processor's observers: metrics, and the pattern
// detectors when they run.
func (o *observability) pipelineObservers(patterns *monitor.Monitor) []pipeline.Observer {
	var out []pipeline.Observer
	if o.metrics != nil {
		out = append(out, o.metrics)
	}
	if patterns != nil {
		out = append(out, patterns)
	}
	return out
}

// workerObserver is told of acknowledged and re-offered BullMQ batches.
func (o *observability) workerObserver() bullmq.WorkerObserver {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

func (o *observability) breakerChanged(from, to pipeline.BreakerState) {
	if o.metrics != nil {
		o.metrics.BreakerChanged(from, to)
	}
}

func (o *observability) configReloaded(result string) {
	if o.metrics != nil {
		o.metrics.ConfigReload(result)
	}
}

// recent is the last minute as the metrics saw it (zero without metrics).
func (o *observability) recent() telemetry.RecentStats {
	if o.metrics == nil {
		return telemetry.RecentStats{}
	}
	return o.metrics.Recent()
}

// healthThresholds and dashboardThresholds read monitoring.alertThresholds.
func healthThresholds(cfg config.Config) health.Thresholds {
	t := cfg.Monitoring.AlertThresholds
	return health.Thresholds{ErrorRate: t.ErrorRate, QueueDepth: int64(t.QueueDepth),
		ProcessingLatency: time.Duration(t.ProcessingLatency) * time.Millisecond}
}

func dashboardThresholds(cfg config.Config) telemetry.Thresholds {
	t := cfg.Monitoring.AlertThresholds
	return telemetry.Thresholds{ErrorRate: t.ErrorRate, ProcessingLatencyMs: int64(t.ProcessingLatency)}
}

// webhooks maps the configured destinations to the notifier's.
func webhooks(cfg config.Config) []notify.Webhook {
	var out []notify.Webhook
	for _, w := range cfg.Monitoring.Notification.EffectiveWebhooks() {
		out = append(out, notify.Webhook{Name: w.Name, URL: w.URL, Secret: w.Secret,
			MinSeverity: audit.Severity(w.MinSeverity), Organizations: w.Organizations})
	}
	return out
}

// redactedPing is a health.Pinger whose errors are redacted: drivers can
// quote their connection string in them, and /healthz shows them.
func redactedPing(ping func(ctx context.Context) error) health.PingFunc {
	return func(ctx context.Context) error { return config.RedactError(ping(ctx)) }
}

// queueDepths reads the depth of every queue state and of the dead-letter
// queue, with one cheap command per state. Its errors are redacted: /healthz,
// the dashboard and the log show them.
func queueDepths(main, dead *bullmq.Queue) func(ctx context.Context) (map[string]int64, error) {
	return func(ctx context.Context) (map[string]int64, error) {
		c, err := main.Counts(ctx)
		if err != nil {
			return nil, config.RedactError(err)
		}
		dl, err := dead.Counts(ctx)
		if err != nil {
			return nil, config.RedactError(err)
		}
		out := map[string]int64{telemetry.QueueDeadLetter: dl[bullmq.StateWaiting] + dl[bullmq.StatePaused]}
		for _, s := range []string{bullmq.StateWaiting, bullmq.StatePaused, bullmq.StateDelayed,
			bullmq.StatePrioritized, bullmq.StateActive, bullmq.StateFailed} {
			out[s] = c[s]
		}
		return out, nil
	}
}

// wireObservability adds what needs the running worker: health checks, queue
// sampling and the dashboard, and returns the HTTP options. Health messages
// quote the errors of the store and Redis, so those are redacted.
func (w *worker) wireObservability(cfg config.Config) httpapi.Options {
	o := w.obs
	alerts, _ := w.store.(audit.AlertStore)
	opts := httpapi.Options{
		Tracing: httpapi.TracingOptions{Store: o.tracing.Store(), EnablePprof: cfg.Observability.Profiling.Enabled},
	}
	if alerts != nil {
		opts.Alerts = httpapi.AlertOptions{Store: alerts}
	}

	th := healthThresholds(cfg)
	o.health = health.NewChecker(health.Options{Thresholds: &th})
	o.health.Add("database", health.Database(redactedPing(w.store.Ping)))
	o.health.Add("circuit-breaker", health.CircuitBreaker(func() string { return string(w.breaker.State()) }))
	o.health.Add("config", health.Config(w.ConfigHealth))
	if o.metrics != nil {
		o.health.Add("processing", health.Processing(func() health.ProcessingStats {
			r := o.metrics.Recent()
			return health.ProcessingStats{ErrorRate: r.ErrorRate, LatencyP95Ms: r.LatencyP95Ms, Events: r.Events}
		}, o.health.Thresholds))
	}
	if w.queue != nil {
		rdb := w.queue.rdb
		o.health.Add("redis", health.Redis(redactedPing(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })))
		o.health.Add("queue", health.Queue(w.queue.depths, o.health.Thresholds))
		if o.metrics != nil {
			interval := time.Duration(cfg.Observability.Metrics.CollectionInterval) * time.Millisecond
			w.spawn("queue sampling", func() error {
				o.metrics.SampleQueues(w.running, interval, w.queue.depths)
				return nil
			})
		}
	}
	opts.Health = httpapi.HealthOptions{Checker: o.health}

	if o.metrics != nil {
		dopts := telemetry.DashboardOptions{Metrics: o.metrics, Breaker: w.breaker.State, Thresholds: dashboardThresholds(cfg)}
		if alerts != nil {
			dopts.Alerts = func(ctx context.Context) (audit.AlertStatistics, error) {
				return alerts.AlertStatistics(ctx, audit.AlertFilter{})
			}
		}
		o.dashboard = telemetry.NewDashboard(dopts)
		opts.Metrics = httpapi.MetricsOptions{Exposition: o.metrics.Handler(), Dashboard: o.dashboard, Bottlenecks: o.dashboard}
	}
	return opts
}

// registerer is where other packages register their metrics (nil without metrics).
func (o *observability) registerer() prometheus.Registerer {
	if o.metrics == nil {
		return nil
	}
	return o.metrics.Registry()
}

// apply hands reloaded thresholds over.
func (o *observability) apply(cfg config.Config) {
	if o.health != nil {
		o.health.SetThresholds(healthThresholds(cfg))
	}
	if o.dashboard != nil {
		o.dashboard.SetThresholds(dashboardThresholds(cfg))
	}
}
