package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// memStore is an in-memory EventStore for testing the pipeline's own logic
// (the real stores have their own conformance suite). It can be told to fail.
type memStore struct {
	mu      sync.Mutex
	seq     int64
	records map[string]audit.Record
	dead    map[string]audit.DeadLetter
	batches int
	fail    error
}

func newMemStore() *memStore {
	return &memStore{records: map[string]audit.Record{}, dead: map[string]audit.DeadLetter{}}
}

func (m *memStore) StoreBatch(ctx context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.batches++
	out := make([]audit.StoreResult, len(b.Records))
	for i, r := range b.Records {
		k := r.IdempotencyKey + "|" + r.Time.String()
		if _, ok := m.records[k]; ok {
			out[i].Duplicate = true
			continue
		}
		m.seq++
		m.records[k] = r
		out[i].Seq = m.seq
	}
	for _, d := range b.DeadLetters {
		m.dead[d.IdempotencyKey] = d
	}
	return out, nil
}

func (m *memStore) GetEvent(context.Context, string) (audit.StoredEvent, error) {
	return audit.StoredEvent{}, errors.New("not used")
}
func (m *memStore) ListEvents(context.Context, int64, int) ([]audit.StoredEvent, error) {
	return nil, errors.New("not used")
}
func (m *memStore) ListDeadLetters(context.Context, int64, int) ([]audit.StoredDeadLetter, error) {
	return nil, errors.New("not used")
}
func (m *memStore) Ping(context.Context) error { return m.fail }
func (m *memStore) Close() error               { return nil }

const hmacKey = "test-secret-key-for-testing-purposes-only"

func newProcessor(store audit.EventStore) *Processor {
	return NewProcessor(store, Config{Rules: audit.DefaultRules(), HMACKey: []byte(hmacKey)})
}

func TestProcessSortsEventsIntoStoredDuplicateRejected(t *testing.T) {
	store := newMemStore()
	p := newProcessor(store)
	g := eventgen.New(7)
	g.HMACKey = []byte(hmacKey)
	valid := g.Valid()
	invalid, code := g.Invalid()
	tampered := g.Tampered()

	inputs := []Input{
		{Payload: valid, Source: "test"},
		{Payload: invalid, Source: "test"},
		{Payload: tampered, Source: "test"},
		{Payload: valid, Source: "test"}, // same bytes, no key: same content key
		{Payload: []byte(`not json`), IdempotencyKey: "k-garbage", Source: "test"},
	}
	out, err := p.Process(context.Background(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status Status
		reason string
	}{
		{StatusStored, ""}, {StatusRejected, audit.ReasonValidation},
		{StatusRejected, audit.ReasonIntegrityViolation}, {StatusDuplicate, ""},
		{StatusRejected, audit.ReasonValidation},
	}
	for i, w := range want {
		if out[i].Status != w.status || out[i].Reason != w.reason {
			t.Errorf("input %d: got %s/%s, want %s/%s (%s)", i, out[i].Status, out[i].Reason, w.status, w.reason, out[i].Message)
		}
	}
	if out[0].Seq == 0 || out[0].Key != ContentKey(valid) {
		t.Errorf("stored outcome = %+v", out[0])
	}
	if len(out[1].Errors) == 0 || out[1].Errors[0].Code != code {
		t.Errorf("validation outcome errors = %+v, want code %s", out[1].Errors, code)
	}
	if len(store.records) != 1 || len(store.dead) != 3 {
		t.Fatalf("store holds %d records and %d dead letters, want 1 and 3", len(store.records), len(store.dead))
	}
	if dl := store.dead[ContentKey(tampered)]; dl.Reason != audit.ReasonIntegrityViolation || string(dl.Payload) != string(tampered) {
		t.Errorf("integrity dead letter = %+v", dl)
	}
	if store.batches != 1 {
		t.Errorf("%d store calls, want 1", store.batches)
	}

	// The same inputs again: everything already stored is a duplicate, nothing new is written.
	again, err := p.Process(context.Background(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Status != StatusDuplicate || len(store.records) != 1 {
		t.Errorf("second delivery: %+v, %d records", again[0], len(store.records))
	}
	s := p.Stats()
	if s.Stored != 1 || s.Duplicates != 3 || s.RejectedValidation != 4 || s.IntegrityViolations != 2 || s.Batches != 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestProcessStoreFailureIsTransientAndWritesNothing(t *testing.T) {
	store := newMemStore()
	store.fail = audit.Errorf(audit.CodeUnavailable, "database down")
	p := newProcessor(store)
	out, err := p.Process(context.Background(), []Input{{Payload: eventgen.New(1).Valid()}})
	if err == nil || out != nil {
		t.Fatalf("got %v, %v; want an error", out, err)
	}
	if !audit.IsTransient(err) {
		t.Errorf("store failure is not transient: %v", err)
	}
	if p.Stats().StoreFailures != 1 {
		t.Errorf("store failures not counted: %+v", p.Stats())
	}
}

// Concurrent submissions share batches: 200 events from 20 callers fill two
// batches of 100, which go to the store at once, without waiting for MaxWait.
func TestBatcherGroupsConcurrentSubmissions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		b := NewBatcher(newProcessor(store), BatcherConfig{MaxSize: 100, MaxWait: 50 * time.Millisecond})
		const callers, perCaller = 20, 10
		payloads := make([][]Input, callers)
		g := eventgen.New(3)
		for i := range payloads {
			for j := range perCaller {
				payloads[i] = append(payloads[i], Input{Payload: g.Valid(), IdempotencyKey: fmt.Sprintf("c%d-%d", i, j)})
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				out, err := b.Submit(t.Context(), payloads[i])
				if err != nil {
					t.Error(err)
					return
				}
				for j, o := range out {
					if o.Status != StatusStored || o.Key != payloads[i][j].IdempotencyKey {
						t.Errorf("caller %d input %d: %+v", i, j, o)
					}
				}
			})
		}
		wg.Wait()
		if took := time.Since(start); took != 0 {
			t.Errorf("the callers waited %s, want no wait: full batches go at once", took)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(store.records) != callers*perCaller || store.batches != 2 {
			t.Errorf("%d records in %d batches, want %d in 2", len(store.records), store.batches, callers*perCaller)
		}
		if _, err := b.Submit(context.Background(), payloads[0]); !errors.Is(err, ErrClosed) {
			t.Errorf("Submit after Close: %v, want ErrClosed", err)
		}
	})
}

// A batch that does not fill goes to the store when its first event has
// waited MaxWait.
func TestBatcherFlushesAPartialBatchAfterMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		b := NewBatcher(newProcessor(store), BatcherConfig{MaxSize: 100, MaxWait: 50 * time.Millisecond})
		defer b.Close(context.Background())
		start := time.Now()
		first := make(chan error, 1)
		go func() {
			_, err := b.Submit(t.Context(), []Input{{Payload: eventgen.New(1).Valid()}})
			first <- err
		}()
		time.Sleep(20 * time.Millisecond) // a second event joins the same batch
		if _, err := b.Submit(t.Context(), []Input{{Payload: eventgen.New(2).Valid()}}); err != nil {
			t.Fatal(err)
		}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 50*time.Millisecond || store.batches != 1 {
			t.Errorf("%d batches after %s, want 1 after MaxWait (50ms) from the first event", store.batches, took)
		}
	})
}

func TestBatcherCloseFlushesPendingWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		b := NewBatcher(newProcessor(store), BatcherConfig{MaxSize: 1000, MaxWait: time.Hour})
		done := make(chan error, 1)
		go func() {
			_, err := b.Submit(context.Background(), []Input{{Payload: eventgen.New(9).Valid()}})
			done <- err
		}()
		synctest.Wait() // the submission is queued, its batch waiting to fill
		if n := b.Pending(); n != 1 {
			t.Fatalf("%d events pending, want 1", n)
		}
		start := time.Now()
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(store.records) != 1 || time.Since(start) != 0 {
			t.Fatalf("%d records after Close, %s later; want 1 at once, not after MaxWait", len(store.records), time.Since(start))
		}
	})
}
