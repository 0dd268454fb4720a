package bullmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// runWorker runs w until the returned stop function is called.
func runWorker(t *testing.T, w *Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("worker did not stop")
		}
	}
}

// eventually waits for cond with this package's timeout (testenv.Eventually).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, cond)
}

func addJobs(t *testing.T, q *Queue, n int, opts JobOptions) []string {
	t.Helper()
	jobs := make([]NewJob, n)
	for i := range jobs {
		jobs[i] = NewJob{Name: q.Name(), Data: []byte(fmt.Sprintf(`{"n":%d}`, i)), Opts: opts}
	}
	ids, err := q.AddBulk(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (e *env) count(key string) int64 {
	ctx := context.Background()
	switch e.rdb.Type(ctx, key).Val() {
	case "list":
		return e.rdb.LLen(ctx, key).Val()
	case "zset":
		return e.rdb.ZCard(ctx, key).Val()
	}
	return 0
}

func TestWorkerProcessesInBatches(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("work")
	var batches, handled atomic.Int64
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		batches.Add(1)
		handled.Add(int64(len(jobs)))
		out := make([]Result, len(jobs))
		for i := range out {
			out[i].ReturnValue = []byte(`{"stored":true}`)
		}
		return out, nil
	})
	addJobs(t, q, 250, JobOptions{Attempts: 1})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{BatchSize: 100, Concurrency: 2, DrainDelay: 100 * time.Millisecond}))
	defer stop()
	eventually(t, "250 completed", func() bool { return e.count(q.Keys().Key("completed")) == 250 })
	if b := batches.Load(); b > 5 {
		t.Errorf("%d batches for 250 jobs of batch size 100", b)
	}
	// Jobs added while the worker idles wake it through the marker.
	addJobs(t, q, 3, JobOptions{Attempts: 1})
	eventually(t, "253 completed", func() bool { return e.count(q.Keys().Key("completed")) == 253 })
	if got := e.rdb.HGet(context.Background(), q.Keys().Job("1"), "returnvalue").Val(); got != `{"stored":true}` {
		t.Errorf("returnvalue = %q", got)
	}
}

// A failing batch is kept and offered again; no attempt is counted for it.
func TestWorkerRetriesFailedBatchWithoutBurningAttempts(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("outage")
	var calls atomic.Int64
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		if calls.Add(1) <= 3 {
			return nil, errors.New("store down")
		}
		for _, j := range jobs {
			if j.AttemptsMade != 0 || j.AttemptsStarted != 1 {
				return nil, fmt.Errorf("job %s: atm %d ats %d, want 0 and 1", j.ID, j.AttemptsMade, j.AttemptsStarted)
			}
		}
		return make([]Result, len(jobs)), nil
	})
	addJobs(t, q, 10, JobOptions{Attempts: 1})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h,
		WorkerOptions{BatchSize: 10, RetryBackoffMin: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond}))
	defer stop()
	eventually(t, "10 completed", func() bool { return e.count(q.Keys().Key("completed")) == 10 })
	if c := calls.Load(); c != 4 {
		t.Errorf("Handle called %d times, want 4 (3 failures, then success)", c)
	}
	if n := e.count(q.Keys().Key("failed")); n != 0 {
		t.Errorf("%d jobs failed", n)
	}
}

func TestWorkerFailsPerResultAndRefusesUnsupportedJobs(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("results")
	ctx := context.Background()
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		out := make([]Result, len(jobs))
		for i, j := range jobs {
			switch string(j.Data) {
			case `"bad"`:
				out[i] = Result{Failure: "validation_failed: action is required"}
			case `"flaky"`:
				out[i] = Result{Failure: "temporary", Retry: true}
			}
		}
		return out, nil
	})
	bad, _ := q.Add(ctx, "results", []byte(`"bad"`), JobOptions{Attempts: 3})
	flaky, _ := q.Add(ctx, "results", []byte(`"flaky"`), JobOptions{Attempts: 2})
	repeat, _ := q.Add(ctx, "results", []byte(`"ok"`), JobOptions{Attempts: 1})
	// As a Node Queue.upsertJobScheduler would leave it: we cannot honour repeat jobs.
	e.rdb.HSet(ctx, q.Keys().Job(repeat), "opts", `{"attempts":1,"repeat":{"every":1000}}`)
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{DrainDelay: 50 * time.Millisecond}))
	defer stop()
	eventually(t, "3 failed", func() bool { return e.count(q.Keys().Key("failed")) == 3 })
	get := func(id, field string) string { return e.rdb.HGet(ctx, q.Keys().Job(id), field).Val() }
	if get(bad, "atm") != "1" || get(bad, "failedReason") != "validation_failed: action is required" {
		t.Errorf("invalid job: atm %s, reason %q (want a final failure at once)", get(bad, "atm"), get(bad, "failedReason"))
	}
	if get(flaky, "atm") != "2" {
		t.Errorf("flaky job: atm %s, want 2 (retried once, then final)", get(flaky, "atm"))
	}
	if get(repeat, "failedReason") == "" {
		t.Error("repeatable job was not refused with a reason")
	}
}

// Shutdown gives back a batch that could not be processed, without an attempt.
func TestWorkerShutdownGivesBackUnprocessedJobs(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("shutdown")
	var mu sync.Mutex
	seen := 0
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		mu.Lock()
		seen += len(jobs)
		mu.Unlock()
		return nil, errors.New("store down")
	})
	addJobs(t, q, 5, JobOptions{Attempts: 1})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{BatchSize: 5}))
	eventually(t, "a batch in hand", func() bool { mu.Lock(); defer mu.Unlock(); return seen > 0 })
	stop()
	if n := e.count(q.Keys().Key("wait")); n != 5 {
		t.Fatalf("%d jobs back in wait, want 5", n)
	}
	if n := e.count(q.Keys().Key("active")); n != 0 {
		t.Errorf("%d jobs still active", n)
	}
	if atm := e.rdb.HGet(context.Background(), q.Keys().Job("1"), "atm").Val(); atm != "" && atm != "0" {
		t.Errorf("atm = %s after give-back, want none", atm)
	}
}

// While the gate is closed nothing is fetched.
func TestWorkerGateStopsFetching(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("gate")
	open := make(chan struct{})
	gate := func(ctx context.Context) error {
		select {
		case <-open:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) { return make([]Result, len(jobs)), nil })
	addJobs(t, q, 4, JobOptions{Attempts: 1})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{Gate: gate}))
	defer stop()
	time.Sleep(200 * time.Millisecond)
	if n := e.count(q.Keys().Key("wait")); n != 4 {
		t.Fatalf("%d jobs in wait while the gate is closed, want 4", n)
	}
	close(open)
	eventually(t, "4 completed", func() bool { return e.count(q.Keys().Key("completed")) == 4 })
}

// A job that stalled too often is still processed: its event must not be lost.
func TestWorkerProcessesJobsThatStalledTooOften(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("defa")
	ctx := context.Background()
	id, _ := q.Add(ctx, "defa", []byte(`{"n":1}`), JobOptions{Attempts: 1})
	e.rdb.HSet(ctx, q.Keys().Job(id), "defa", "job stalled more than allowable limit", "stc", "2")
	var seen atomic.Int64
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		seen.Add(int64(len(jobs)))
		return make([]Result, len(jobs)), nil
	})
	stop := runWorker(t, NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{DrainDelay: 50 * time.Millisecond}))
	defer stop()
	eventually(t, "the job completed", func() bool { return e.count(q.Keys().Key("completed")) == 1 })
	if seen.Load() != 1 {
		t.Errorf("handler saw %d jobs, want 1", seen.Load())
	}
}

// Completing a large batch out of fetch order takes its jobs out of active in
// one pass; the other in-flight jobs stay, in their order, and a job that is no
// longer active is reported as such.
func TestCompleteLargeBatchOutOfOrder(t *testing.T) {
	e := newEnv(t)
	q := e.queue("bulk")
	ctx := context.Background()
	addJobs(t, q, 120, JobOptions{Attempts: 1})
	c := e.consumer(q, ConsumerOptions{})
	first, second, third := mustFetch(t, c, 40), mustFetch(t, c, 40), mustFetch(t, c, 40)
	activeBefore := e.rdb.LRange(ctx, q.Keys().Key("active"), 0, -1).Val()
	e.rdb.LRem(ctx, q.Keys().Key("active"), 1, second[7].ID) // taken away meanwhile

	errs, err := c.Complete(ctx, second, make([][]byte, len(second)))
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if i == 7 {
			if !errors.Is(err, ErrNotActive) {
				t.Errorf("job %s: %v, want ErrNotActive", second[i].ID, err)
			}
		} else if err != nil {
			t.Errorf("job %s: %v", second[i].ID, err)
		}
	}
	wantActiveWithout(t, e, q, activeBefore, second)
	if n := e.count(q.Keys().Key("completed")); n != 39 {
		t.Errorf("%d completed, want 39", n)
	}
	if _, err := c.Complete(ctx, append(first, third...), make([][]byte, 80)); err != nil {
		t.Fatal(err)
	}
	if n := e.rdb.Exists(ctx, q.Keys().Key("active")).Val(); n != 0 {
		t.Error("active list not empty after all were completed")
	}
}

// wantActiveWithout fails the test unless the active list is before without
// the given jobs, in the same order.
func wantActiveWithout(t *testing.T, e *env, q *Queue, before []string, gone []*Job) {
	t.Helper()
	done := map[string]bool{}
	for _, j := range gone {
		done[j.ID] = true
	}
	var want []string
	for _, id := range before {
		if !done[id] {
			want = append(want, id)
		}
	}
	got := e.rdb.LRange(context.Background(), q.Keys().Key("active"), 0, -1).Val()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("active after = %v\nwant %v", got, want)
	}
}

// Completing the oldest in-flight batch cuts it off the tail of active; a batch
// that only partly fills the tail is taken out one by one. Either way the
// others stay, in their order.
func TestCompleteOldestBatchLeavesTheOthersInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		pick func(first, second []*Job) []*Job
	}{
		{"whole oldest batch", func(first, _ []*Job) []*Job { return first }},
		{"oldest batch but one, plus a newer job", func(first, second []*Job) []*Job {
			return append(slices.Clone(first[:len(first)-1]), second[0])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			q := e.queue("tail")
			ctx := context.Background()
			addJobs(t, q, 120, JobOptions{Attempts: 1})
			c := e.consumer(q, ConsumerOptions{})
			first, second := mustFetch(t, c, 40), mustFetch(t, c, 40)
			mustFetch(t, c, 40)
			activeBefore := e.rdb.LRange(ctx, q.Keys().Key("active"), 0, -1).Val()
			batch := tc.pick(first, second)
			errs, err := c.Complete(ctx, batch, make([][]byte, len(batch)))
			if err != nil {
				t.Fatal(err)
			}
			for i, j := range batch {
				if errs[i] != nil {
					t.Errorf("job %s: %v", j.ID, errs[i])
				}
			}
			wantActiveWithout(t, e, q, activeBefore, batch)
			if n := e.count(q.Keys().Key("completed")); n != int64(len(batch)) {
				t.Errorf("%d completed, want %d", n, len(batch))
			}
		})
	}
}

// Concurrency and batch size change while the worker runs.
func TestWorkerReconfiguresWhileRunning(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("reconf")
	var mu sync.Mutex
	inFlight, maxInFlight, largest := 0, 0, 0
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		largest = max(largest, len(jobs))
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return make([]Result, len(jobs)), nil
	})
	addJobs(t, q, 40, JobOptions{Attempts: 1})
	w := NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{BatchSize: 5, Concurrency: 1, DrainDelay: 50 * time.Millisecond})
	stop := runWorker(t, w)
	defer stop()
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if maxInFlight != 1 || largest != 5 {
		t.Errorf("before: %d in flight, largest batch %d; want 1 and 5", maxInFlight, largest)
	}
	mu.Unlock()
	w.SetConcurrency(3)
	w.SetBatchSize(10)
	eventually(t, "3 batches in flight", func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == 3 })
	close(release)
	eventually(t, "40 completed", func() bool { return e.count(q.Keys().Key("completed")) == 40 })
	mu.Lock()
	defer mu.Unlock()
	if maxInFlight != 3 || largest != 10 {
		t.Errorf("after: at most %d in flight, largest batch %d; want 3 and 10", maxInFlight, largest)
	}
}
