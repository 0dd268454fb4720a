package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// gatedStore holds StoreBatch until gate is closed.
type gatedStore struct {
	*memStore
	gate chan struct{}
}

func (g gatedStore) StoreBatch(ctx context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	select {
	case <-g.gate:
	case <-time.After(5 * time.Second):
		return nil, audit.Errorf(audit.CodeUnavailable, "the early observer never ran during the store")
	}
	return g.memStore.StoreBatch(ctx, b)
}

// earlyRecorder opens the store's gate when it has seen the batch, then takes
// a while; afterRecorder is a plain observer.
type earlyRecorder struct {
	gate      chan struct{}
	mu        sync.Mutex
	keys      []string
	finished  bool
	lateCalls int
}

func (e *earlyRecorder) ObserveEarly(_ context.Context, r *BatchReport) {
	e.mu.Lock()
	for _, a := range r.Accepted {
		e.keys = append(e.keys, a.Key)
	}
	e.mu.Unlock()
	close(e.gate) // the store may go on: proof that both run at once
	time.Sleep(50 * time.Millisecond)
	e.mu.Lock()
	e.finished = true
	e.mu.Unlock()
}

func (e *earlyRecorder) ObserveBatch(context.Context, *BatchReport) {
	e.mu.Lock()
	e.lateCalls++
	e.mu.Unlock()
}

type afterRecorder struct{ reports []*BatchReport }

func (a *afterRecorder) ObserveBatch(_ context.Context, r *BatchReport) {
	a.reports = append(a.reports, r)
}

// An EarlyObserver sees the valid events (once per key) while the store
// writes, and Process returns only after it has finished; plain observers are
// told after the store.
func TestEarlyObserverOverlapsTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		early := &earlyRecorder{gate: gate}
		after := &afterRecorder{}
		p := newProcessor(gatedStore{memStore: newMemStore(), gate: gate})
		p.Instrument(Instruments{Observers: []Observer{early, after}})

		g := eventgen.New(5)
		g.HMACKey = []byte(hmacKey)
		invalid, _ := g.Invalid()
		valid := g.Valid()
		inputs := []Input{
			{Payload: valid, IdempotencyKey: "a"},
			{Payload: invalid, IdempotencyKey: "bad"},
			{Payload: g.Valid(), IdempotencyKey: "b"},
			{Payload: valid, IdempotencyKey: "a"}, // the same key again in the batch
		}
		start := time.Now()
		out, err := p.Process(context.Background(), inputs)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 50*time.Millisecond {
			t.Errorf("Process took %s, want the early observer's 50ms: the store writes meanwhile", took)
		}
		early.mu.Lock()
		defer early.mu.Unlock()
		if !early.finished {
			t.Error("Process returned before the early observer finished")
		}
		if !slices.Equal(early.keys, []string{"a", "b"}) {
			t.Errorf("early observer saw keys %v, want [a b]: valid events, once per key", early.keys)
		}
		if early.lateCalls != 0 {
			t.Errorf("an early observer was also called after the store (%d times)", early.lateCalls)
		}
		if len(after.reports) != 1 || len(after.reports[0].Accepted) != 3 || out[0].Status != StatusStored {
			t.Errorf("plain observer: %d reports; outcomes %+v", len(after.reports), out)
		}
	})
}
