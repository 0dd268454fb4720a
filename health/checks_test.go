package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
)

// slowPinger advances a fake clock by its answer time.
type slowPinger struct {
	clock *testenv.Clock
	took  time.Duration
	err   error
}

func (p slowPinger) Ping(context.Context) error {
	p.clock.Add(p.took)
	return p.err
}

func TestPingCheckAnswerTimes(t *testing.T) {
	for _, tc := range []struct {
		took time.Duration
		want Status
	}{
		{0, StatusOK},
		{2 * time.Second, StatusOK},
		{2*time.Second + time.Millisecond, StatusWarning},
		{5 * time.Second, StatusWarning},
		{5*time.Second + time.Millisecond, StatusCritical},
	} {
		clock := testenv.NewClock(time.Unix(0, 0))
		r := pingCheck("database", slowPinger{clock: clock, took: tc.took}, clock.Now)(context.Background())
		if r.Status != tc.want || r.Details["connected"] != true {
			t.Errorf("answer in %s: %+v, want %s", tc.took, r, tc.want)
		}
		if tc.want != StatusOK && !strings.HasPrefix(r.Message, "database answered in") {
			t.Errorf("answer in %s: message %q", tc.took, r.Message)
		}
	}
}

func TestPingCheckErrors(t *testing.T) {
	down := PingFunc(func(context.Context) error { return errors.New("connection refused") })
	for _, tc := range []struct {
		check Check
		want  string
	}{
		{Database(down), "database unreachable: connection refused"},
		{Redis(down), "redis unreachable: connection refused"},
	} {
		r := tc.check(context.Background())
		if r.Status != StatusCritical || r.Message != tc.want || r.Details["connected"] != false {
			t.Errorf("%+v, want CRITICAL %q", r, tc.want)
		}
	}
	up := PingFunc(func(context.Context) error { return nil })
	if r := Redis(up)(context.Background()); r.Status != StatusOK || r.Message != "" {
		t.Errorf("redis up: %+v", r)
	}
}

func TestQueueCheck(t *testing.T) {
	thresholds := func() Thresholds { return Thresholds{QueueDepth: 100} }
	for _, tc := range []struct {
		counts map[string]int64
		want   Status
	}{
		{map[string]int64{}, StatusOK},
		{map[string]int64{"wait": 99, "delayed": 10000, "active": 50}, StatusOK},
		{map[string]int64{"wait": 100}, StatusWarning},
		{map[string]int64{"wait": 60, "prioritized": 40}, StatusWarning},
		{map[string]int64{"wait": 499}, StatusWarning},
		{map[string]int64{"wait": 400, "prioritized": 100}, StatusCritical},
	} {
		r := Queue(func(context.Context) (map[string]int64, error) { return tc.counts, nil }, thresholds)(context.Background())
		waiting := tc.counts["wait"] + tc.counts["prioritized"]
		if r.Status != tc.want || r.Details["waiting"] != waiting {
			t.Errorf("%v: %+v, want %s", tc.counts, r, tc.want)
		}
		for state, n := range tc.counts {
			if r.Details[state] != n {
				t.Errorf("%v: details[%s] = %v", tc.counts, state, r.Details[state])
			}
		}
		if (tc.want == StatusOK) != (r.Message == "") {
			t.Errorf("%v: message %q", tc.counts, r.Message)
		}
	}
	r := Queue(func(context.Context) (map[string]int64, error) { return nil, errors.New("NOAUTH") }, thresholds)(context.Background())
	if r.Status != StatusCritical || r.Message != "queue depth unavailable: NOAUTH" {
		t.Errorf("read error: %+v", r)
	}
}

func TestCircuitBreakerCheck(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  Status
	}{
		{string(pipeline.BreakerClosed), StatusOK},
		{"closed", StatusOK},
		{string(pipeline.BreakerHalfOpen), StatusWarning},
		{"half-open", StatusWarning},
		{string(pipeline.BreakerOpen), StatusCritical},
		{"open", StatusCritical},
		{"JAMMED", StatusWarning},
	} {
		r := CircuitBreaker(func() string { return tc.state })(context.Background())
		if r.Status != tc.want || r.Details["state"] != tc.state {
			t.Errorf("%s: %+v, want %s", tc.state, r, tc.want)
		}
	}
}

func TestProcessingCheck(t *testing.T) {
	thresholds := func() Thresholds { return Thresholds{ErrorRate: 0.1, ProcessingLatency: 5 * time.Second} }
	for _, tc := range []struct {
		name  string
		stats ProcessingStats
		want  Status
		msg   string // substring
	}{
		{"idle", ProcessingStats{ErrorRate: 1, LatencyP95Ms: 99999}, StatusOK, "no events in the last minute"},
		{"healthy", ProcessingStats{Events: 10, ErrorRate: 0.049, LatencyP95Ms: 1999}, StatusOK, ""},
		{"errors at half", ProcessingStats{Events: 10, ErrorRate: 0.05}, StatusWarning, "error rate 0.05"},
		{"errors below threshold", ProcessingStats{Events: 10, ErrorRate: 0.0999}, StatusWarning, "error rate"},
		{"errors at threshold", ProcessingStats{Events: 10, ErrorRate: 0.1}, StatusCritical, "error rate 0.1 "},
		{"latency at 40%", ProcessingStats{Events: 10, LatencyP95Ms: 2000}, StatusWarning, "p95 latency 2000 ms"},
		{"latency below threshold", ProcessingStats{Events: 10, LatencyP95Ms: 4999}, StatusWarning, "p95 latency"},
		{"latency at threshold", ProcessingStats{Events: 10, LatencyP95Ms: 5000}, StatusCritical, "p95 latency 5000 ms"},
		{"latency worse", ProcessingStats{Events: 10, ErrorRate: 0.06, LatencyP95Ms: 6000}, StatusCritical, "p95 latency 6000 ms"},
		{"errors worse", ProcessingStats{Events: 10, ErrorRate: 0.2, LatencyP95Ms: 3000}, StatusCritical, "error rate 0.2 "},
		{"both warn", ProcessingStats{Events: 10, ErrorRate: 0.06, LatencyP95Ms: 3000}, StatusWarning, "; p95 latency"},
	} {
		r := Processing(func() ProcessingStats { return tc.stats }, thresholds)(context.Background())
		if r.Status != tc.want || !strings.Contains(r.Message, tc.msg) || (tc.msg == "" && r.Message != "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.want, tc.msg)
		}
		if r.Details["events"] != tc.stats.Events || r.Details["latencyP95Ms"] != tc.stats.LatencyP95Ms {
			t.Errorf("%s: details %v", tc.name, r.Details)
		}
	}
	if r := Processing(func() ProcessingStats { return ProcessingStats{Events: 10, ErrorRate: 0.06} }, thresholds)(context.Background()); strings.Contains(r.Message, "latency") {
		t.Errorf("an OK latency must not be named: %q", r.Message)
	}

	zero := func() Thresholds { return Thresholds{ErrorRate: 0} }
	if r := Processing(func() ProcessingStats { return ProcessingStats{Events: 10} }, zero)(context.Background()); r.Status != StatusOK {
		t.Errorf("no errors with threshold 0: %+v", r)
	}
	if r := Processing(func() ProcessingStats { return ProcessingStats{Events: 1000, ErrorRate: 0.001} }, zero)(context.Background()); r.Status != StatusCritical {
		t.Errorf("one error with threshold 0: %+v", r)
	}
}

func TestConfigCheck(t *testing.T) {
	if r := Config(func() (bool, string) { return true, "" })(context.Background()); r.Status != StatusOK {
		t.Errorf("current: %+v", r)
	}
	r := Config(func() (bool, string) { return false, "running on the cached configuration" })(context.Background())
	if r.Status != StatusWarning || r.Message != "running on the cached configuration" {
		t.Errorf("stale: %+v", r)
	}
}
