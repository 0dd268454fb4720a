package pipeline

import (
	"context"
	"errors"
	"testing"
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

func TestBreakerWaitBlocksWhileOpen(t *testing.T) {
	b := NewBreaker(BreakerConfig{FailureThreshold: 1, RecoveryTimeout: 50 * time.Millisecond})
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.allow()
	b.record(audit.Errorf(audit.CodeUnavailable, "down"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while open returned %v, want to block until the context ends", err)
	}
	start := time.Now()
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Error("Wait did not return after the recovery timeout")
	}
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

func TestBatcherSetLimits(t *testing.T) {
	store := newMemStore()
	b := NewBatcher(newProcessor(store), BatcherConfig{MaxSize: 1000, MaxWait: time.Hour})
	defer b.Close(context.Background())
	b.SetLimits(1, 0) // one event makes a batch now
	done := make(chan error, 1)
	go func() {
		_, err := b.Submit(context.Background(), []Input{{Payload: eventgen.New(4).Valid()}})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("batch not flushed at the new size limit")
	}
}
