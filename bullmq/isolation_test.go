package bullmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poisonHandler fails every batch that holds a poison job: with an error that
// is not transient ("poison-error"), or by panicking ("poison-panic"). It
// completes other batches, and dead-letters what the worker gives up on.
type poisonHandler struct {
	calls     atomic.Int64
	mu        sync.Mutex
	completed map[string]int    // job id -> times completed
	dead      map[string]string // job id -> reason given to DeadLetter
}

func newPoisonHandler() *poisonHandler {
	return &poisonHandler{completed: map[string]int{}, dead: map[string]string{}}
}

func (h *poisonHandler) Handle(ctx context.Context, jobs []*Job) ([]Result, error) {
	h.calls.Add(1)
	for _, j := range jobs {
		switch string(j.Data) {
		case `"poison-error"`:
			return nil, fmt.Errorf("cannot handle job %s", j.ID)
		case `"poison-panic"`:
			panic("bad job " + j.ID)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Result, len(jobs))
	for i, j := range jobs {
		h.completed[j.ID]++
		out[i].ReturnValue = []byte(`{"ok":true}`)
	}
	return out, nil
}

// IsTransient: none of its errors is.
func (h *poisonHandler) IsTransient(error) bool { return false }

func (h *poisonHandler) DeadLetter(ctx context.Context, jobs []*Job, reasons []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, j := range jobs {
		h.dead[j.ID] = reasons[i]
	}
	return nil
}

// Three poison jobs among 300 good ones, two batches in flight: the poison
// jobs fail for good with their error as the reason and are dead-lettered,
// every good job completes exactly once, and the queue drains in bounded time.
func TestWorkerFailsPoisonJobsAloneAndCompletesTheRest(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("poison")
	ctx := context.Background()
	var jobs []NewJob
	poison := map[int]string{40: `"poison-error"`, 41: `"poison-panic"`, 250: `"poison-error"`}
	for i := range 303 {
		data := fmt.Sprintf(`{"n":%d}`, i)
		if p, ok := poison[i]; ok {
			data = p
		}
		jobs = append(jobs, NewJob{Name: "poison", Data: []byte(data), Opts: JobOptions{Attempts: 3}})
	}
	ids, err := q.AddBulk(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	h := newPoisonHandler()
	start := time.Now()
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{
		BatchSize: 50, Concurrency: 2, DrainDelay: 50 * time.Millisecond,
		RetryBackoffMin: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond}))
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for e.count(q.Keys().Key("completed")) != 300 || e.count(q.Keys().Key("failed")) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("queue stalled: %d completed, %d failed after 30 s, want 300 and 3",
				e.count(q.Keys().Key("completed")), e.count(q.Keys().Key("failed")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("303 jobs, 3 poison: drained in %v with %d Handle calls", time.Since(start).Round(time.Millisecond), h.calls.Load())

	for i, id := range ids {
		reason := e.rdb.HGet(ctx, q.Keys().Job(id), "failedReason").Val()
		atm := e.rdb.HGet(ctx, q.Keys().Job(id), "atm").Val()
		h.mu.Lock()
		completed, dead := h.completed[id], h.dead[id]
		h.mu.Unlock()
		switch poison[i] {
		case `"poison-error"`:
			want := "cannot handle job " + id
			if reason != want || dead != want || atm != "1" || completed != 0 {
				t.Errorf("job %s: failedReason %q, dead letter %q, atm %s, completed %d; want a final failure %q, dead-lettered",
					id, reason, dead, atm, completed, want)
			}
		case `"poison-panic"`:
			want := "handler panicked: bad job " + id
			if reason != want || dead != want || completed != 0 {
				t.Errorf("job %s: failedReason %q, dead letter %q; want %q, dead-lettered", id, reason, dead, want)
			}
		default:
			if completed != 1 || dead != "" || reason != "" {
				t.Errorf("job %s: completed %d times, dead letter %q, failedReason %q; want completed once", id, completed, dead, reason)
			}
		}
	}
	// Each poisoned batch: MaxHandleAttempts tries, then one call per job.
	// The poison jobs 40 and 41 may share a batch.
	if calls := h.calls.Load(); calls > 300/50+3*(5+50) {
		t.Errorf("%d Handle calls, want at most %d", calls, 300/50+3*(5+50))
	}
}

// transientHandler fails its first failures calls with an error it calls
// transient.
type transientHandler struct {
	calls, failures atomic.Int64
}

var errOutage = errors.New("store down")

func (h *transientHandler) Handle(ctx context.Context, jobs []*Job) ([]Result, error) {
	if h.calls.Add(1) <= h.failures.Load() {
		return nil, errOutage
	}
	return make([]Result, len(jobs)), nil
}

func (h *transientHandler) IsTransient(err error) bool { return errors.Is(err, errOutage) }

// An outage is waited out however long it lasts: a transient error burns no
// attempt and never splits the batch.
func TestWorkerRetriesTransientErrorsBeyondTheBound(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("outage-long")
	h := &transientHandler{}
	h.failures.Store(12)
	addJobs(t, q, 10, JobOptions{Attempts: 1})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{
		BatchSize: 10, MaxHandleAttempts: 2, RetryBackoffMin: time.Millisecond, RetryBackoffMax: 2 * time.Millisecond}))
	defer stop()
	eventually(t, "10 completed", func() bool { return e.count(q.Keys().Key("completed")) == 10 })
	if c := h.calls.Load(); c != 13 {
		t.Errorf("Handle called %d times, want 13 (12 transient failures of the whole batch, then success)", c)
	}
	if n := e.count(q.Keys().Key("failed")); n != 0 {
		t.Errorf("%d jobs failed", n)
	}
	if atm := e.rdb.HGet(context.Background(), q.Keys().Job("1"), "atm").Val(); atm != "1" {
		t.Errorf("atm = %s, want 1: the outage counted no attempt", atm)
	}
}

// A handler without TransientChecker: every error counts, and a lone job
// that keeps failing fails after MaxHandleAttempts, with no split to make.
func TestWorkerFailsALoneJobAfterTheBound(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("lone")
	var calls atomic.Int64
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		calls.Add(1)
		return nil, errors.New("no luck")
	})
	id, _ := q.Add(context.Background(), "lone", []byte(`{}`), JobOptions{Attempts: 1})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{
		MaxHandleAttempts: 3, DrainDelay: 50 * time.Millisecond, RetryBackoffMin: time.Millisecond, RetryBackoffMax: 2 * time.Millisecond}))
	defer stop()
	eventually(t, "the job failed", func() bool { return e.count(q.Keys().Key("failed")) == 1 })
	if c := calls.Load(); c != 3 {
		t.Errorf("Handle called %d times, want 3", c)
	}
	if r := e.rdb.HGet(context.Background(), q.Keys().Job(id), "failedReason").Val(); r != "no luck" {
		t.Errorf("failedReason %q, want the handler's error", r)
	}
}

// Shutdown while a failing batch is handled job by job: the jobs handled so
// far are acknowledged, the rest go back to wait without an attempt.
func TestWorkerShutdownWhileHandlingJobsAlone(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("split-stop")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var alone atomic.Int64
	h := HandlerFunc(func(_ context.Context, jobs []*Job) ([]Result, error) {
		if len(jobs) > 1 {
			return nil, errors.New("batch fails")
		}
		if string(jobs[0].Data) == `{"n":0}` {
			return nil, errors.New("job 0 fails")
		}
		if alone.Add(1) == 2 { // the third job alone: shutdown begins
			cancel()
		}
		return make([]Result, 1), nil
	})
	ids := addJobs(t, q, 5, JobOptions{Attempts: 1})
	w := NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{
		BatchSize: 5, MaxHandleAttempts: 1, RetryBackoffMin: time.Millisecond, RetryBackoffMax: 2 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
	bg := context.Background()
	state := func(id string) string {
		for _, s := range []string{"completed", "failed", "wait"} {
			key := q.Keys().Key(s)
			if slices.Contains(e.rdb.LRange(bg, key, 0, -1).Val(), id) || e.rdb.ZScore(bg, key, id).Err() == nil {
				return s
			}
		}
		return "elsewhere"
	}
	for i, want := range []string{"failed", "completed", "completed", "wait", "wait"} {
		got := state(ids[i])
		if got != want {
			t.Errorf("job %s: %s, want %s", ids[i], got, want)
		}
		if want == "wait" {
			if atm := e.rdb.HGet(bg, q.Keys().Job(ids[i]), "atm").Val(); atm != "" && atm != "0" {
				t.Errorf("job %s given back with atm %s, want none", ids[i], atm)
			}
		}
	}
	if r := e.rdb.HGet(bg, q.Keys().Job(ids[0]), "failedReason").Val(); !strings.Contains(r, "job 0 fails") {
		t.Errorf("failedReason %q, want the job's own error", r)
	}
}
