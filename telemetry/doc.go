// Package telemetry owns how the worker reports on itself: structured logging;
// Prometheus metrics on the worker's own registry (Metrics, a pipeline.Observer,
// which also keeps bounded recent-window statistics: throughput, latency
// percentiles, error rate, recent errors); the dashboard and enhanced-metrics
// documents built from them (Dashboard); the per-stage bottleneck analysis read
// back from the stage histograms; and tracing.
package telemetry
