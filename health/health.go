package health

import (
	"context"
	"time"
)

// Status is a component's or the whole worker's health, spelled as the
// original worker spelled it.
type Status string

const (
	StatusOK       Status = "OK"
	StatusWarning  Status = "WARNING"
	StatusCritical Status = "CRITICAL"
)

// severity orders statuses; anything unknown counts as CRITICAL, so a check
// that forgets to set its status never looks healthy.
func (s Status) severity() int {
	switch s {
	case StatusOK:
		return 0
	case StatusWarning:
		return 1
	default:
		return 2
	}
}

// Worse returns the more severe of two statuses.
func Worse(a, b Status) Status {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

// Result is one component's health: the original's ComponentHealth.
type Result struct {
	Status  Status         `json:"status"`
	Message string         `json:"message,omitempty"`
	Details map[string]any `json:"details,omitempty"`
	// ResponseTime is how long the check took, in milliseconds; the Checker measures it.
	ResponseTime int64 `json:"responseTime"`
	// LastCheck is when the check finished; the Checker sets it.
	LastCheck time.Time `json:"lastCheck"`
}

// Check reports one component's health. It must be cheap and honour ctx: the
// Checker gives up on it after its timeout.
type Check func(ctx context.Context) Result

// Report is the whole worker's health: the original's HealthStatus.
type Report struct {
	Status     Status            `json:"status"`
	Components map[string]Result `json:"components"`
	Timestamp  time.Time         `json:"timestamp"`
}

// Thresholds are the alert levels the queue and processing checks compare
// against (monitoring.alertThresholds in the configuration).
type Thresholds struct {
	// ErrorRate (0–1): CRITICAL at or above it, WARNING at or above half of it.
	// 0 means any error at all is CRITICAL.
	ErrorRate float64
	// QueueDepth (waiting jobs): WARNING at or above it, CRITICAL at five times it.
	QueueDepth int64
	// ProcessingLatency (p95): CRITICAL at or above it, WARNING at 40 % of it.
	ProcessingLatency time.Duration
}

// DefaultThresholds are the configuration's defaults, which reproduce the
// original's hard-coded levels (queue 100/500, latency 2000/5000 ms, errors 5/10 %).
func DefaultThresholds() Thresholds {
	return Thresholds{ErrorRate: 0.1, QueueDepth: 100, ProcessingLatency: 5 * time.Second}
}

// withDefaults replaces values that would make a check meaningless (a zero
// queue depth would warn about an empty queue) by the defaults; a zero error
// rate is kept, since the configuration allows it.
func (t Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	if t.ErrorRate < 0 {
		t.ErrorRate = d.ErrorRate
	}
	if t.QueueDepth <= 0 {
		t.QueueDepth = d.QueueDepth
	}
	if t.ProcessingLatency <= 0 {
		t.ProcessingLatency = d.ProcessingLatency
	}
	return t
}
