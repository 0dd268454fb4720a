package telemetry_test

import (
	"context"
	"slices"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

func TestSeriesIsTheLastWholeSecondsOldestFirst(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	ctx := context.Background()
	start := c.Now().Unix()
	m.ObserveBatch(ctx, report(c.Now(), storedN(3, time.Millisecond)...))
	c.Add(time.Second)
	m.ObserveBatch(ctx, report(c.Now(), append(storedN(5, time.Millisecond), rejected(audit.ReasonValidation))...))
	// One second without events, then events in the current second, which
	// the series leaves out.
	c.Add(2 * time.Second)
	m.ObserveBatch(ctx, report(c.Now(), storedN(7, time.Millisecond)...))

	for _, tc := range []struct {
		n                  int
		received, failures []int64
	}{
		{4, []int64{0, 3, 6, 0}, []int64{0, 0, 1, 0}},
		{2, []int64{6, 0}, []int64{1, 0}},
		{0, []int64{}, []int64{}},
	} {
		s := m.Series(tc.n)
		if s.End != start+3 || !slices.Equal(s.Received, tc.received) || !slices.Equal(s.Errors, tc.failures) {
			t.Errorf("Series(%d) = %+v, want end %d, received %v, errors %v", tc.n, s, start+3, tc.received, tc.failures)
		}
	}
	c.Add(2 * time.Hour) // the ring's slots are reused: old seconds never reappear
	if s := m.Series(3600); slices.Max(s.Received) != 0 || len(s.Received) != 3600 {
		t.Errorf("two hours later the series holds %d events in %d seconds", slices.Max(s.Received), len(s.Received))
	}
	if s := m.Series(10000); len(s.Received) != 3600 {
		t.Errorf("Series(10000) has %d seconds, want the hour the window keeps", len(s.Received))
	}
}

func TestBreakerHistoryKeepsTheLatestTransitions(t *testing.T) {
	c := newClock()
	m := newMetrics(c)
	if h := m.BreakerHistory(); len(h) != 0 {
		t.Fatalf("history at start: %v", h)
	}
	states := []pipeline.BreakerState{pipeline.BreakerClosed, pipeline.BreakerOpen, pipeline.BreakerHalfOpen}
	for i := range 60 {
		c.Add(time.Second)
		m.BreakerChanged(states[i%3], states[(i+1)%3])
	}
	h := m.BreakerHistory()
	if len(h) != 50 {
		t.Fatalf("%d transitions kept, want the latest 50", len(h))
	}
	last := h[len(h)-1]
	if !last.Time.Equal(c.Now()) || last.From != states[59%3] || last.To != states[60%3] {
		t.Errorf("last transition %+v, want the 60th at %s", last, c.Now())
	}
	if !h[0].Time.Equal(c.Now().Add(-49 * time.Second)) {
		t.Errorf("oldest kept %s, want the 11th", h[0].Time)
	}
}
