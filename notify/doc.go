// Package notify delivers alerts to webhooks.
//
// A Notifier never blocks the code that raises alerts: Notify puts one
// delivery per matching destination on a bounded in-memory queue (dropping,
// with a warning and a metric, when it is full), and background workers POST
// the alert as JSON, signed with the destination's secret (HMAC-SHA256 over
// "<timestamp>.<body>", the scheme of Stripe and GitHub webhooks), retrying
// transient failures with exponential backoff and jitter. Receivers check a
// request with Verify, which also refuses stale timestamps (replay protection).
//
// The outcome of every attempt is logged, counted in Prometheus metrics and,
// given an audit.DeliveryRecorder, stored. Destination URLs and secrets are
// never logged: webhook URLs often carry a token themselves.
package notify
