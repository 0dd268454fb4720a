// Package health owns the worker's health checks: a Checker runs named
// component checks (database, Redis, queue depth, processing, circuit breaker,
// configuration) in parallel, each bounded by a timeout and cached for a short
// TTL, and folds them into one report in the original worker's HealthStatus
// shape. The constructors in checks.go turn a dependency (anything that can
// Ping, a queue's job counts, the breaker's state, processing statistics) into
// a check; the alert thresholds they use can be replaced while running.
//
// It imports only the standard library: cmd/audit-worker adapts stores, Redis
// clients and the breaker to the small function types used here.
package health
