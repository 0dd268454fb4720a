package health

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Pinger is a dependency that can say whether it answers; audit.EventStore
// implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingFunc adapts a function to Pinger, e.g. a go-redis client:
// PingFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() }).
type PingFunc func(ctx context.Context) error

// Ping calls f.
func (f PingFunc) Ping(ctx context.Context) error { return f(ctx) }

// Answer times above which a dependency that does answer is degraded (the original's levels).
const (
	SlowAnswer    = 2 * time.Second // WARNING above
	TooSlowAnswer = 5 * time.Second // CRITICAL above
)

// Database checks that the event store answers, and how fast.
func Database(p Pinger) Check { return pingCheck("database", p, time.Now) }

// Redis checks that Redis answers, and how fast.
func Redis(p Pinger) Check { return pingCheck("redis", p, time.Now) }

// pingCheck takes its clock as a parameter so the answer-time levels can be
// tested without waiting seconds.
func pingCheck(what string, p Pinger, now func() time.Time) Check {
	return func(ctx context.Context) Result {
		start := now()
		err := p.Ping(ctx)
		elapsed := now().Sub(start)
		if err != nil {
			return Result{Status: StatusCritical, Message: what + " unreachable: " + err.Error(),
				Details: map[string]any{"connected": false}}
		}
		r := Result{Status: StatusOK, Details: map[string]any{"connected": true}}
		switch {
		case elapsed > TooSlowAnswer:
			r.Status, r.Message = StatusCritical, fmt.Sprintf("%s answered in %s (more than %s)", what, elapsed.Round(time.Millisecond), TooSlowAnswer)
		case elapsed > SlowAnswer:
			r.Status, r.Message = StatusWarning, fmt.Sprintf("%s answered in %s (more than %s)", what, elapsed.Round(time.Millisecond), SlowAnswer)
		}
		return r
	}
}

// DepthFunc returns a queue's job counts by BullMQ state ("wait",
// "prioritized", "delayed", "active", ...); bullmq.Queue.Counts is one.
type DepthFunc func(ctx context.Context) (map[string]int64, error)

// Queue checks the backlog: jobs waiting to be fetched (wait + prioritized;
// delayed jobs are not due yet, so they are only shown). WARNING at the
// QueueDepth threshold, CRITICAL at five times it.
func Queue(depth DepthFunc, thresholds func() Thresholds) Check {
	return func(ctx context.Context) Result {
		counts, err := depth(ctx)
		if err != nil {
			return Result{Status: StatusCritical, Message: "queue depth unavailable: " + err.Error()}
		}
		t := thresholds().withDefaults()
		waiting := counts["wait"] + counts["prioritized"]
		details := map[string]any{"waiting": waiting, "warningAt": t.QueueDepth, "criticalAt": 5 * t.QueueDepth}
		for state, n := range counts {
			details[state] = n
		}
		r := Result{Status: StatusOK, Details: details}
		switch {
		case waiting >= 5*t.QueueDepth:
			r.Status, r.Message = StatusCritical, fmt.Sprintf("%d jobs waiting (critical at %d)", waiting, 5*t.QueueDepth)
		case waiting >= t.QueueDepth:
			r.Status, r.Message = StatusWarning, fmt.Sprintf("%d jobs waiting (warning at %d)", waiting, t.QueueDepth)
		}
		return r
	}
}

// CircuitBreaker reports the store's circuit breaker: CLOSED is OK, HALF_OPEN
// (recovering) WARNING, OPEN CRITICAL. pipeline.BreakerState's spelling and
// lower-case or hyphenated variants are accepted; anything else is WARNING.
func CircuitBreaker(state func() string) Check {
	return func(context.Context) Result {
		s := state()
		r := Result{Details: map[string]any{"state": s}}
		switch strings.ReplaceAll(strings.ToUpper(s), "-", "_") {
		case "CLOSED":
			r.Status = StatusOK
		case "HALF_OPEN":
			r.Status, r.Message = StatusWarning, "circuit breaker is half-open: probing the store"
		case "OPEN":
			r.Status, r.Message = StatusCritical, "circuit breaker is open: the store kept failing"
		default:
			r.Status, r.Message = StatusWarning, fmt.Sprintf("unknown circuit breaker state %q", s)
		}
		return r
	}
}

// ProcessingStats summarises the last minute of processing.
type ProcessingStats struct {
	ErrorRate    float64 // share of events that failed, 0–1
	LatencyP95Ms float64 // 95th percentile processing latency, milliseconds
	Events       int64   // events processed
}

// Processing checks the error rate and the p95 latency of the last minute
// against the thresholds; the worse of the two decides.
func Processing(stats func() ProcessingStats, thresholds func() Thresholds) Check {
	return func(context.Context) Result {
		s := stats()
		t := thresholds().withDefaults()
		critMs := float64(t.ProcessingLatency) / float64(time.Millisecond)
		details := map[string]any{
			"events": s.Events, "errorRate": s.ErrorRate, "latencyP95Ms": s.LatencyP95Ms,
			"errorRateThreshold": t.ErrorRate, "latencyThresholdMs": critMs,
		}
		if s.Events == 0 {
			return Result{Status: StatusOK, Message: "no events in the last minute", Details: details}
		}
		errStatus := StatusOK
		switch {
		case s.ErrorRate > 0 && s.ErrorRate >= t.ErrorRate:
			errStatus = StatusCritical
		case s.ErrorRate > 0 && s.ErrorRate >= t.ErrorRate/2:
			errStatus = StatusWarning
		}
		latStatus := StatusOK
		switch {
		case s.LatencyP95Ms >= critMs:
			latStatus = StatusCritical
		case s.LatencyP95Ms >= 0.4*critMs:
			latStatus = StatusWarning
		}
		r := Result{Status: Worse(errStatus, latStatus), Details: details}
		var msgs []string
		if errStatus != StatusOK && errStatus == r.Status {
			msgs = append(msgs, fmt.Sprintf("error rate %.4g (threshold %.4g)", s.ErrorRate, t.ErrorRate))
		}
		if latStatus != StatusOK && latStatus == r.Status {
			msgs = append(msgs, fmt.Sprintf("p95 latency %.0f ms (threshold %.0f ms)", s.LatencyP95Ms, critMs))
		}
		r.Message = strings.Join(msgs, "; ")
		return r
	}
}

// Config reports whether the running configuration is current; running on a
// cached copy or after a refused reload works but needs a look: WARNING.
func Config(status func() (ok bool, msg string)) Check {
	return func(context.Context) Result {
		if ok, msg := status(); !ok {
			return Result{Status: StatusWarning, Message: msg}
		}
		return Result{Status: StatusOK}
	}
}
