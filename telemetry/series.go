package telemetry

import (
	"slices"
	"time"

	"github.com/smartlogs/audit-worker/pipeline"
)

// Series is the events received and failed in each second of a stretch of
// time, oldest first: what a live chart of throughput draws.
type Series struct {
	// End is the Unix second just after the last point: the points cover
	// [End-len(Received), End).
	End      int64   `json:"end"`
	Received []int64 `json:"received"`
	Errors   []int64 `json:"errors"` // rejected events and events of failed store batches
}

// Series returns the last n whole seconds (the current, unfinished second is
// left out), at most an hour. It reads n slots of the window under its lock,
// so a live view can ask every second without weighing on ingest.
func (m *Metrics) Series(n int) Series {
	n = min(max(n, 0), hourSeconds)
	end := m.now().Unix()
	s := Series{End: end, Received: make([]int64, n), Errors: make([]int64, n)}
	w := m.win
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range n {
		sec := end - int64(n-i)
		if b := &w.secs[sec%hourSeconds]; b.sec == sec {
			s.Received[i], s.Errors[i] = b.received, b.errors
		}
	}
	return s
}

// BreakerTransition is one change of the circuit breaker's state.
type BreakerTransition struct {
	Time time.Time             `json:"time"`
	From pipeline.BreakerState `json:"from"`
	To   pipeline.BreakerState `json:"to"`
}

// breakerHistoryLen bounds the transitions kept: enough to show a flapping
// store, never growing with uptime.
const breakerHistoryLen = 50

// BreakerHistory returns the latest circuit breaker transitions, oldest first.
func (m *Metrics) BreakerHistory() []BreakerTransition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.breakerHistory)
}

// appendTransition adds t, dropping the oldest beyond breakerHistoryLen.
func appendTransition(h []BreakerTransition, t BreakerTransition) []BreakerTransition {
	if len(h) == breakerHistoryLen {
		h = slices.Delete(h, 0, 1)
	}
	return append(h, t)
}
