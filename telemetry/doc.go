// Package telemetry owns how the worker reports on itself: structured logging
// now; Prometheus metrics, tracing and stage timings build on it.
package telemetry
