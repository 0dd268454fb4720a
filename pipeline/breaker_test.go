package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	clock := testenv.NewClock(time.Unix(1000, 0))
	var transitions []string
	b := NewBreaker(BreakerConfig{FailureThreshold: 3, RecoveryTimeout: 10 * time.Second, Now: clock.Now,
		OnChange: func(from, to BreakerState) { transitions = append(transitions, string(from)+">"+string(to)) }})
	down := audit.Errorf(audit.CodeUnavailable, "connection refused")

	for i := range 2 {
		if !b.allow() {
			t.Fatalf("call %d refused while closed", i)
		}
		b.record(down)
	}
	b.allow()
	b.record(errors.New("a permanent error")) // not transient: resets the count
	for range 3 {
		b.allow()
		b.record(down)
	}
	if b.State() != BreakerOpen || b.allow() {
		t.Fatalf("state %s after 3 consecutive failures, want OPEN and refusing", b.State())
	}

	clock.Add(10 * time.Second)
	if !b.allow() || b.State() != BreakerHalfOpen {
		t.Fatalf("no probe after the recovery timeout: %s", b.State())
	}
	if b.allow() {
		t.Fatal("a second probe was allowed while the first is in flight")
	}
	b.record(down) // probe failed: open again
	if b.State() != BreakerOpen || b.allow() {
		t.Fatalf("state %s after a failed probe", b.State())
	}
	clock.Add(10 * time.Second)
	b.allow()
	b.record(nil)
	if b.State() != BreakerClosed {
		t.Fatalf("state %s after a good probe", b.State())
	}
	want := []string{"CLOSED>OPEN", "OPEN>HALF_OPEN", "HALF_OPEN>OPEN", "OPEN>HALF_OPEN", "HALF_OPEN>CLOSED"}
	if len(transitions) != len(want) {
		t.Fatalf("transitions %v, want %v", transitions, want)
	}
	for i := range want {
		if transitions[i] != want[i] {
			t.Errorf("transition %d = %s, want %s", i, transitions[i], want[i])
		}
	}
}

// Wait returns at once while the breaker is closed, and when it is open
// exactly when the recovery timeout has passed, or when its context ends.
func TestBreakerWaitBlocksWhileOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerConfig{FailureThreshold: 1, RecoveryTimeout: time.Minute})
		start := time.Now()
		if err := b.Wait(t.Context()); err != nil || time.Since(start) != 0 {
			t.Fatalf("Wait while closed = %v after %s, want nil at once", err, time.Since(start))
		}
		b.allow()
		b.record(audit.Errorf(audit.CodeUnavailable, "down"))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 10*time.Second {
			t.Fatalf("Wait while open = %v after %s, want the context's deadline after 10s", err, time.Since(start))
		}
		if err := b.Wait(t.Context()); err != nil || time.Since(start) != time.Minute {
			t.Fatalf("Wait while open = %v after %s, want nil after the recovery timeout (1m)", err, time.Since(start))
		}
	})
}

// A reload that shortens the recovery timeout wakes a waiting Wait, which
// then returns at the new time.
func TestBreakerWaitFollowsReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerConfig{FailureThreshold: 1, RecoveryTimeout: time.Hour})
		b.allow()
		b.record(audit.Errorf(audit.CodeUnavailable, "down"))
		start := time.Now()
		returned := make(chan time.Duration, 1)
		go func() {
			if err := b.Wait(t.Context()); err != nil {
				t.Error(err)
			}
			returned <- time.Since(start)
		}()
		time.Sleep(10 * time.Second)
		b.Reconfigure(0, 30*time.Second)
		if took := <-returned; took != 30*time.Second {
			t.Errorf("Wait returned after %s, want 30s: the new recovery timeout, counted from the opening", took)
		}
	})
}

// While the store is down the processor refuses batches without calling it,
// and nothing is counted as rejected.
func TestProcessorWithBreaker(t *testing.T) {
	store := newMemStore()
	store.fail = audit.Errorf(audit.CodeUnavailable, "database down")
	clock := testenv.NewClock(time.Now())
	br := NewBreaker(BreakerConfig{FailureThreshold: 2, RecoveryTimeout: time.Minute, Now: clock.Now})
	p := NewProcessor(store, Config{Rules: audit.DefaultRules(), Breaker: br})
	in := []Input{{Payload: eventgen.New(1).Valid()}}
	for range 2 {
		if _, err := p.Process(context.Background(), in); err == nil {
			t.Fatal("store failure not reported")
		}
	}
	store.fail = nil // the store is back, but the breaker does not know yet
	if _, err := p.Process(context.Background(), in); !errors.Is(err, ErrBreakerOpen) || !audit.IsTransient(err) {
		t.Fatalf("open breaker: err = %v, want transient ErrBreakerOpen", err)
	} else if !strings.Contains(err.Error(), "database down") {
		t.Fatalf("open breaker: err = %v, want it to quote the store's last failure", err)
	}
	if store.batches != 0 {
		t.Fatalf("store called %d times while failing or open", store.batches)
	}
	clock.Add(time.Minute)
	out, err := p.Process(context.Background(), in)
	if err != nil || out[0].Status != StatusStored || br.State() != BreakerClosed {
		t.Fatalf("probe: %+v %v, breaker %s", out, err, br.State())
	}
	if s := p.Stats(); s.RejectedValidation != 0 || s.Stored != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestBreakerReconfigure(t *testing.T) {
	clock := testenv.NewClock(time.Unix(1000, 0))
	b := NewBreaker(BreakerConfig{FailureThreshold: 5, RecoveryTimeout: time.Minute, Now: clock.Now})
	down := audit.Errorf(audit.CodeUnavailable, "down")
	b.allow()
	b.record(down)
	b.Reconfigure(2, 5*time.Second)
	b.allow()
	b.record(down)
	if b.State() != BreakerOpen {
		t.Fatalf("state %s after 2 failures with threshold lowered to 2", b.State())
	}
	clock.Add(5 * time.Second)
	if !b.allow() {
		t.Error("no probe after the new, shorter recovery timeout")
	}
}

// SetLimits applies to the next batch: a size of one flushes at once, a new
// wait bounds how long a lone event waits.
func TestBatcherSetLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBatcher(newProcessor(newMemStore()), BatcherConfig{MaxSize: 1000, MaxWait: time.Hour})
		defer b.Close(context.Background())
		g := eventgen.New(4)
		for _, c := range []struct {
			size int
			wait time.Duration
			want time.Duration // how long a lone event waits for its batch
		}{
			{size: 1, want: 0},
			{size: 1000, wait: 20 * time.Millisecond, want: 20 * time.Millisecond},
		} {
			b.SetLimits(c.size, c.wait)
			start := time.Now()
			if _, err := b.Submit(t.Context(), []Input{{Payload: g.Valid()}}); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took != c.want {
				t.Errorf("limits %d, %s: the event waited %s, want %s", c.size, c.wait, took, c.want)
			}
		}
	})
}

// hangingStore never answers until its caller gives up, as a PostgreSQL
// server that accepts and never replies.
type hangingStore struct{ *memStore }

func (hangingStore) StoreBatch(ctx context.Context, _ audit.Batch) ([]audit.StoreResult, error) {
	<-ctx.Done()
	return nil, audit.Wrap(audit.CodeUnavailable, "copy", ctx.Err())
}

func TestStoreTimeoutFailsTheBatchAndOpensTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		br := NewBreaker(BreakerConfig{FailureThreshold: 2, RecoveryTimeout: time.Minute})
		p := NewProcessor(hangingStore{newMemStore()}, Config{Rules: audit.DefaultRules(), Breaker: br, StoreTimeout: 5 * time.Second})
		in := []Input{{Payload: eventgen.New(1).Valid()}}
		for i := range 2 {
			start := time.Now()
			_, err := p.Process(context.Background(), in)
			if err == nil || !audit.IsTransient(err) {
				t.Fatalf("batch %d on a silent store: err = %v, want a transient error", i, err)
			}
			if took := time.Since(start); took != 5*time.Second {
				t.Errorf("batch %d gave up after %s, want the 5s store timeout", i, took)
			}
		}
		if br.State() != BreakerOpen {
			t.Errorf("breaker %s after two store timeouts, want OPEN", br.State())
		}
	})
}

func TestCallerGivingUpIsNoStoreFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		br := NewBreaker(BreakerConfig{FailureThreshold: 1, RecoveryTimeout: time.Minute})
		p := NewProcessor(hangingStore{newMemStore()}, Config{Rules: audit.DefaultRules(), Breaker: br})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := p.Process(ctx, []Input{{Payload: eventgen.New(1).Valid()}}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the caller's deadline", err)
		}
		if br.State() != BreakerClosed {
			t.Errorf("breaker %s after the caller gave up, want CLOSED", br.State())
		}
	})
}
