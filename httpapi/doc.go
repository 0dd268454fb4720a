// Package httpapi is the worker's HTTP server, one file per feature: event
// ingest (POST /v1/events) behind bearer API keys; health (/healthz,
// /health/{component}, /readyz, unauthenticated for load balancers); Prometheus
// metrics (/metrics) and the observability views (dashboard, enhanced metrics,
// bottlenecks, traces, profiling, pprof) behind the key; and the alerts API.
//
// It uses the pipeline's Input and Outcome types, since ingest is one more
// source feeding the pipeline, and reaches everything else through small
// interfaces (health checker, dashboard, span store, alert store).
package httpapi
