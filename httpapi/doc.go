// Package httpapi is the worker's HTTP server: event ingest (POST /v1/events)
// behind bearer API keys, and health (GET /healthz). Later: metrics,
// observability, queries, compliance reports and alerts.
//
// It uses the pipeline's Input and Outcome types, since ingest is one more
// source feeding the pipeline, and never touches a store except to check health.
package httpapi
