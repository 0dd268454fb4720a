package bullmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

func TestAddFetchComplete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("audit-events")
	k := q.Keys()
	ts := e.clock.Now().UnixMilli()

	id := mustAdd(t, q, "audit.login", `{"user":"alice","action":"login"}`,
		JobOptions{Attempts: 3, Backoff: &Backoff{Type: BackoffExponential, Delay: 1000}})
	wantEqual(t, "id", id, "1")
	h := hgetall(t, e.rdb, k.Job(id))
	wantFields(t, "job hash after add", h, map[string]string{
		"name": "audit.login", "data": `{"user":"alice","action":"login"}`, "opts": h["opts"],
		"timestamp": strconv.FormatInt(ts, 10), "delay": "0", "priority": "0",
	})
	var opts JobOptions
	if err := opts.UnmarshalJSON([]byte(h["opts"])); err != nil {
		t.Fatalf("stored opts %s: %v", h["opts"], err)
	}
	wantEqual(t, "opts.attempts", opts.Attempts, 3)
	wantEqual(t, "opts.backoff", *opts.Backoff, Backoff{Type: BackoffExponential, Delay: 1000})
	wantEqual(t, "wait", fmt.Sprint(lrange(t, e.rdb, k.Key("wait"))), "[1]")
	wantEqual(t, "id counter", e.rdb.Get(ctx, k.Key("id")).Val(), "1")
	wantEqual(t, "meta maxLenEvents", e.rdb.HGet(ctx, k.Key("meta"), "opts.maxLenEvents").Val(), "10000")
	wantEqual(t, "marker", fmt.Sprint(zrange(t, e.rdb, k.Key("marker"))), "[{0 0}]")
	evs := events(t, e.rdb, q)
	if len(evs) != 2 {
		t.Fatalf("events after add = %v", evs)
	}
	wantFields(t, "added event", evs[0], map[string]string{"event": "added", "jobId": "1", "name": "audit.login"})
	wantFields(t, "waiting event", evs[1], map[string]string{"event": "waiting", "jobId": "1"})

	c := e.consumer(q, ConsumerOptions{WorkerName: "go-worker"})
	e.rdb.Del(ctx, k.Key("marker")) // as if a blocked worker had popped it
	e.clock.Add(1298 * time.Millisecond)
	jobs := mustFetch(t, c, 10)
	if len(jobs) != 1 {
		t.Fatalf("fetched %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	wantEqual(t, "job.ID", j.ID, "1")
	wantEqual(t, "job.Name", j.Name, "audit.login")
	wantEqual(t, "job.Data", string(j.Data), `{"user":"alice","action":"login"}`)
	wantEqual(t, "job.Timestamp", j.Timestamp, ts)
	wantEqual(t, "job.AttemptsStarted", j.AttemptsStarted, 1)
	wantEqual(t, "job.AttemptsMade", j.AttemptsMade, 0)
	wantEqual(t, "job.Opts.Attempts", j.Opts.Attempts, 3)
	if _, bad := j.Unsupported(); bad {
		t.Errorf("plain job reported unsupported")
	}
	if !strings.Contains(j.Token, ":") || j.Token == "0" {
		t.Errorf("token %q is not <uuid>:<n>", j.Token)
	}
	wantEqual(t, "lock", e.rdb.Get(ctx, k.Job(id)+":lock").Val(), j.Token)
	if pttl := e.rdb.PTTL(ctx, k.Job(id)+":lock").Val(); pttl <= 29*time.Second || pttl > 30*time.Second {
		t.Errorf("lock pttl = %v, want ~30s", pttl)
	}
	h = hgetall(t, e.rdb, k.Job(id))
	wantEqual(t, "processedOn", h["processedOn"], strconv.FormatInt(e.clock.Now().UnixMilli(), 10))
	wantEqual(t, "pb", h["pb"], "go-worker")
	wantEqual(t, "ats", h["ats"], "1")
	wantEqual(t, "active", fmt.Sprint(lrange(t, e.rdb, k.Key("active"))), "[1]")
	wantEqual(t, "wait exists", exists(t, e.rdb, k.Key("wait")), false)
	wantEqual(t, "marker after fetch", fmt.Sprint(zrange(t, e.rdb, k.Key("marker"))), "[{0 0}]")
	wantFields(t, "active event", lastEvents(t, e.rdb, q, 1)[0],
		map[string]string{"event": "active", "jobId": "1", "prev": "waiting"})

	e.clock.Add(2041 * time.Millisecond)
	noErrs(t)(c.Complete(ctx, jobs, [][]byte{[]byte(`{"stored":true,"rows":1}`)}))
	wantEqual(t, "job.AttemptsMade after complete", j.AttemptsMade, 1)
	h = hgetall(t, e.rdb, k.Job(id))
	wantEqual(t, "atm", h["atm"], "1")
	wantEqual(t, "returnvalue", h["returnvalue"], `{"stored":true,"rows":1}`)
	wantEqual(t, "finishedOn", h["finishedOn"], strconv.FormatInt(e.clock.Now().UnixMilli(), 10))
	wantEqual(t, "completed", fmt.Sprint(zrange(t, e.rdb, k.Key("completed"))),
		fmt.Sprint([]redis.Z{{Score: float64(e.clock.Now().UnixMilli()), Member: "1"}}))
	wantEqual(t, "lock exists", exists(t, e.rdb, k.Job(id)+":lock"), false)
	wantEqual(t, "active exists", exists(t, e.rdb, k.Key("active")), false)
	last := lastEvents(t, e.rdb, q, 2)
	wantFields(t, "completed event", last[0], map[string]string{
		"event": "completed", "jobId": "1", "returnvalue": `{"stored":true,"rows":1}`, "prev": "active"})
	wantFields(t, "drained event", last[1], map[string]string{"event": "drained"})

	// Nothing left: an empty fetch reports no delayed job.
	if jobs := mustFetch(t, c, 5); len(jobs) != 0 {
		t.Errorf("fetch on empty queue returned %v", ids(jobs))
	}
}

// beforePipeline runs a function before the first pipeline the client sends.
type beforePipeline struct {
	once sync.Once
	fn   func()
}

func (b *beforePipeline) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (b *beforePipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (b *beforePipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		b.once.Do(b.fn)
		return next(ctx, cmds)
	}
}

// A job removed between the fetch script and the read of its hash (a forced
// obliteration) is left out of the batch; its lock expires and the stalled
// check takes the id out of active without recovering anything.
func TestFetchDropsJobRemovedBeforeItIsRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("vanish")
	k := q.Keys()
	for _, name := range []string{"a", "b", "c"} {
		mustAdd(t, q, name, `{}`, JobOptions{})
	}
	c := e.consumer(q, ConsumerOptions{StalledInterval: time.Minute})
	// Installed after NewConsumer, whose setup sends no pipeline.
	e.rdb.AddHook(&beforePipeline{fn: func() { e.rdb.Del(ctx, k.Job("2")) }})

	jobs := mustFetch(t, c, 10)
	wantEqual(t, "fetched", fmt.Sprint(ids(jobs)), "[1 3]")
	for _, j := range jobs {
		wantEqual(t, "job "+j.ID+" name", j.Name, map[string]string{"1": "a", "3": "c"}[j.ID])
		wantEqual(t, "job "+j.ID+" AttemptsStarted", j.AttemptsStarted, 1)
		wantEqual(t, "job "+j.ID+" ProcessedOn", j.ProcessedOn, e.clock.Now().UnixMilli())
	}
	wantEqual(t, "active", fmt.Sprint(lrange(t, e.rdb, k.Key("active"))), "[3 2 1]")

	check := func() []string {
		t.Helper()
		e.rdb.Del(ctx, k.Key("stalled-check"))
		rec, err := c.CheckStalled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	check() // marks the active ids as candidates
	e.rdb.Del(ctx, k.Job("2")+":lock")
	if rec := check(); len(rec) != 0 {
		t.Errorf("recovered %v, want nothing: job 2 is gone", rec)
	}
	wantEqual(t, "active after the stalled check", fmt.Sprint(lrange(t, e.rdb, k.Key("active"))), "[3 1]")
	wantEqual(t, "job 2 recreated", exists(t, e.rdb, k.Job("2")), false)
	noErrs(t)(c.Complete(ctx, jobs, [][]byte{nil, nil}))
	wantEqual(t, "active after completing the others", exists(t, e.rdb, k.Key("active")), false)
}

// addMixed feeds a queue the same jobs in the same order: plain, lifo,
// prioritized, delayed (some due after the clock moves), custom id, a legacy
// marker id in wait, and ids whose hash is gone in wait and in prioritized.
func addMixed(t *testing.T, e *env, q *Queue) {
	t.Helper()
	ctx := context.Background()
	mustAdd(t, q, "a", `{"n":1}`, JobOptions{Attempts: 1, RemoveOnComplete: KeepLast(100), RemoveOnFail: KeepAll()})
	mustAdd(t, q, "b", `{"n":2}`, JobOptions{Priority: 5})
	mustAdd(t, q, "c", `{"n":3}`, JobOptions{Delay: time.Second})
	mustAdd(t, q, "d", `{"n":4}`, JobOptions{Priority: 1})
	mustAdd(t, q, "e", `{"n":5}`, JobOptions{Delay: time.Second, Priority: 2})
	mustAdd(t, q, "f", `{"n":6}`, JobOptions{Lifo: true})
	mustAdd(t, q, "g", `{"n":7}`, JobOptions{JobID: "evt-custom"})
	mustAdd(t, q, "h", `{"n":8}`, JobOptions{Delay: time.Hour})
	mustAdd(t, q, "i", `{"n":9}`, JobOptions{Priority: 5})
	if err := e.rdb.LPush(ctx, q.Keys().Key("wait"), "0:legacy").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.RPush(ctx, q.Keys().Key("wait"), "gone-from-wait").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ZAdd(ctx, q.Keys().Key("prioritized"), redis.Z{Score: 3 << 32, Member: "gone-from-prioritized"}).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBatchFetchEqualsSingleFetches(t *testing.T) {
	e := newEnv(t)
	batchQ, singleQ := e.queue("batch"), e.queue("single")
	addMixed(t, e, batchQ)
	addMixed(t, e, singleQ)
	e.clock.Add(1500 * time.Millisecond) // the two 1000 ms delayed jobs are due

	batch := e.consumer(batchQ, ConsumerOptions{WorkerName: "w"})
	single := e.consumer(singleQ, ConsumerOptions{WorkerName: "w"})
	got := mustFetch(t, batch, 12) // more than are ready: exercises the empty end too
	var want []*Job
	for range 12 {
		want = append(want, mustFetch(t, single, 1)...)
	}
	wantEqual(t, "batch ids", fmt.Sprint(ids(got)), fmt.Sprint(ids(want)))
	wantEqual(t, "fetch order", fmt.Sprint(ids(got)), "[6 1 evt-custom 3 4 5 2 9]")

	a := wantSameState(t, e, batchQ, singleQ)
	if len(a) < 20 {
		t.Errorf("dump has only %d keys: %v", len(a), a)
	}
	if _, ok := a["pc"]; ok {
		t.Errorf("pc still exists after prioritized drained")
	}
}

// wantSameState fails the test unless the two queues hold the same keys with
// the same contents (see dump); it returns the batch queue's dump.
func wantSameState(t *testing.T, e *env, batchQ, singleQ *Queue) map[string]string {
	t.Helper()
	a, b := dump(t, e.rdb, batchQ.Keys()), dump(t, e.rdb, singleQ.Keys())
	for key, va := range a {
		if vb, ok := b[key]; !ok {
			t.Errorf("key %s only after the batch call: %s", key, va)
		} else if va != vb {
			t.Errorf("key %s differs:\nbatch:  %s\nsingle: %s", key, va, vb)
		}
	}
	for key, vb := range b {
		if _, ok := a[key]; !ok {
			t.Errorf("key %s only after single calls: %s", key, vb)
		}
	}
	return a
}

// TestBatchFinishEqualsSingleFinishes completes (and fails) a batch of jobs
// whose keep rules change from job to job, in one call and one job per call:
// the trims, the deferred writes of completed jobs (skipped for those a trim
// deletes at once) and the events must leave the same state.
func TestBatchFinishEqualsSingleFinishes(t *testing.T) {
	keeps := []KeepJobs{KeepLast(3), KeepLast(3), KeepLast(3), KeepLast(3), KeepLast(3),
		KeepAll(), RemoveAll(), KeepLast(2), KeepLast(2), KeepWithin(4, time.Hour), KeepLast(3), KeepLast(3)}
	for _, target := range []string{"completed", "failed"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t)
			batchQ, singleQ := e.queue("batch"), e.queue("single")
			for _, q := range []*Queue{batchQ, singleQ} {
				for i, k := range keeps {
					mustAdd(t, q, "job", fmt.Sprintf(`{"n":%d}`, i), JobOptions{Attempts: 1, RemoveOnComplete: k, RemoveOnFail: k})
				}
			}
			finish := func(c *Consumer, jobs []*Job) {
				t.Helper()
				values := make([][]byte, len(jobs))
				reasons := make([]string, len(jobs))
				for i, j := range jobs {
					values[i] = []byte(`{"stored":"` + j.ID + `"}`)
					reasons[i] = "bad event " + j.ID
				}
				var errs []error
				var err error
				if target == "completed" {
					errs, err = c.Complete(context.Background(), jobs, values)
				} else {
					errs, err = c.FailFinal(context.Background(), jobs, reasons)
				}
				if err != nil {
					t.Fatal(err)
				}
				for i, err := range errs {
					if err != nil {
						t.Fatalf("job %s: %v", jobs[i].ID, err)
					}
				}
			}
			batch := e.consumer(batchQ, ConsumerOptions{WorkerName: "w"})
			single := e.consumer(singleQ, ConsumerOptions{WorkerName: "w"})
			// Two jobs finished earlier (a millisecond before the rest), so the
			// trims also meet older entries.
			for _, c := range []*Consumer{batch, single} {
				finish(c, mustFetch(t, c, 2))
			}
			e.clock.Add(time.Millisecond)
			finish(batch, mustFetch(t, batch, len(keeps)))
			for _, j := range mustFetch(t, single, len(keeps)) {
				finish(single, []*Job{j})
			}
			a := wantSameState(t, e, batchQ, singleQ)
			if _, ok := a[target]; !ok {
				t.Fatalf("no %s set after finishing: %v", target, a)
			}
		})
	}
}

func TestPriorityOrdering(t *testing.T) {
	e := newEnv(t)
	q := e.queue("prio")
	k := q.Keys()
	mustAdd(t, q, "a", `{}`, JobOptions{Priority: 5})
	mustAdd(t, q, "b", `{}`, JobOptions{Priority: 1})
	mustAdd(t, q, "c", `{}`, JobOptions{})
	mustAdd(t, q, "d", `{}`, JobOptions{Priority: 1})
	mustAdd(t, q, "e", `{}`, JobOptions{})
	mustAdd(t, q, "f", `{}`, JobOptions{Priority: 5})
	s, _ := zscore(t, e.rdb, k.Key("prioritized"), "1")
	wantEqual(t, "score of job 1", int64(s), int64(5<<32+1))
	wantEqual(t, "pc", e.rdb.Get(context.Background(), k.Key("pc")).Val(), "4")

	c := e.consumer(q, ConsumerOptions{})
	var order []string
	for range 7 {
		for _, j := range mustFetch(t, c, 1) {
			order = append(order, j.Name)
		}
	}
	wantEqual(t, "order", strings.Join(order, ""), "cebdaf")
	wantEqual(t, "pc exists", exists(t, e.rdb, k.Key("pc")), false)
	// "active" is emitted with prev=waiting for prioritized jobs too.
	for _, ev := range eventsNamed(t, e.rdb, q, "active") {
		wantEqual(t, "active prev", ev["prev"], "waiting")
	}
}

func TestDelayedPromotion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("delayed")
	k := q.Keys()
	ts := e.clock.Now().UnixMilli()
	id1 := mustAdd(t, q, "a", `{}`, JobOptions{Delay: 5 * time.Second})
	id2 := mustAdd(t, q, "b", `{}`, JobOptions{Delay: 5 * time.Second})
	due := ts + 5000
	s1, _ := zscore(t, e.rdb, k.Key("delayed"), id1)
	s2, _ := zscore(t, e.rdb, k.Key("delayed"), id2)
	wantEqual(t, "score 1", int64(s1), due*4096)
	wantEqual(t, "score 2 (same ms, next seq)", int64(s2), due*4096+1)
	wantEqual(t, "marker", fmt.Sprint(zrange(t, e.rdb, k.Key("marker"))),
		fmt.Sprint([]redis.Z{{Score: float64(due), Member: "1"}}))
	wantFields(t, "delayed event", eventsNamed(t, e.rdb, q, "delayed")[0],
		map[string]string{"event": "delayed", "jobId": id1, "delay": strconv.FormatInt(due, 10)})
	wantEqual(t, "delay field", e.rdb.HGet(ctx, k.Job(id1), "delay").Val(), "5000")

	c := e.consumer(q, ConsumerOptions{})
	if jobs := mustFetch(t, c, 5); len(jobs) != 0 {
		t.Fatalf("fetched %v before due", ids(jobs))
	}
	wantEqual(t, "next delayed known", c.nextDelayed.Load(), due)

	e.clock.Add(4999 * time.Millisecond)
	if jobs := mustFetch(t, c, 5); len(jobs) != 0 {
		t.Fatalf("fetched %v 1 ms before due", ids(jobs))
	}
	e.clock.Add(time.Millisecond) // due at exactly its ms
	jobs := mustFetch(t, c, 5)
	wantEqual(t, "promoted and fetched", fmt.Sprint(ids(jobs)), "[1 2]")
	wantEqual(t, "delay reset", e.rdb.HGet(ctx, k.Job(id1), "delay").Val(), "0")
	wantEqual(t, "delayed exists", exists(t, e.rdb, k.Key("delayed")), false)
	w := eventsNamed(t, e.rdb, q, "waiting")
	if len(w) != 2 {
		t.Fatalf("waiting events = %v", w)
	}
	wantFields(t, "promotion event", w[0], map[string]string{"event": "waiting", "jobId": id1, "prev": "delayed"})
}

func TestRemoveOnCompleteCount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("keep100")
	k := q.Keys()
	mustAddBulk(t, q, 105, "audit-events", JobOptions{Attempts: 1, RemoveOnComplete: KeepLast(100), RemoveOnFail: KeepAll()})
	c := e.consumer(q, ConsumerOptions{})
	for {
		batch := mustFetch(t, c, 10)
		if len(batch) == 0 {
			break
		}
		for _, j := range batch { // one call per job so finishedOn orders them
			e.clock.Add(time.Millisecond)
			noErrs(t)(c.Complete(ctx, []*Job{j}, [][]byte{[]byte(`"ok"`)}))
		}
	}
	wantEqual(t, "completed count", e.rdb.ZCard(ctx, k.Key("completed")).Val(), int64(100))
	for i := 1; i <= 5; i++ {
		wantEqual(t, "oldest job hash "+strconv.Itoa(i)+" exists", exists(t, e.rdb, k.Job(strconv.Itoa(i))), false)
	}
	wantEqual(t, "job 6 kept", exists(t, e.rdb, k.Job("6")), true)
	wantEqual(t, "job 105 kept", e.rdb.HGet(ctx, k.Job("105"), "returnvalue").Val(), `"ok"`)
}

func TestRemoveOnCompleteTrue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("remove")
	k := q.Keys()
	id := mustAdd(t, q, "a", `{}`, JobOptions{RemoveOnComplete: RemoveAll()})
	if err := e.rdb.RPush(ctx, k.Job(id)+":logs", "line").Err(); err != nil {
		t.Fatal(err)
	}
	c := e.consumer(q, ConsumerOptions{})
	noErrs(t)(c.Complete(ctx, mustFetch(t, c, 1), [][]byte{nil}))
	wantEqual(t, "hash exists", exists(t, e.rdb, k.Job(id)), false)
	wantEqual(t, "logs exist", exists(t, e.rdb, k.Job(id)+":logs"), false)
	wantEqual(t, "completed exists", exists(t, e.rdb, k.Key("completed")), false)
	wantFields(t, "completed event", eventsNamed(t, e.rdb, q, "completed")[0], map[string]string{
		"event": "completed", "jobId": id, "returnvalue": "null", "prev": "active"})
}

func TestRemoveOnFailFalse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("failkeep")
	k := q.Keys()
	id := mustAdd(t, q, "a", `{}`, JobOptions{Attempts: 1, RemoveOnComplete: KeepLast(100), RemoveOnFail: KeepAll()})
	c := e.consumer(q, ConsumerOptions{})
	jobs := mustFetch(t, c, 1)
	if _, retry := BackoffDelay(jobs[0]); retry {
		t.Fatal("attempts 1 must not retry")
	}
	e.clock.Add(10 * time.Millisecond)
	noErrs(t)(c.FailFinal(ctx, jobs, []string{"invalid event: missing actor"}))
	h := hgetall(t, e.rdb, k.Job(id))
	wantEqual(t, "failedReason", h["failedReason"], "invalid event: missing actor")
	wantEqual(t, "stacktrace", h["stacktrace"], `["invalid event: missing actor"]`)
	wantEqual(t, "atm", h["atm"], "1")
	wantEqual(t, "finishedOn", h["finishedOn"], strconv.FormatInt(e.clock.Now().UnixMilli(), 10))
	s, ok := zscore(t, e.rdb, k.Key("failed"), id)
	wantEqual(t, "in failed", ok, true)
	wantEqual(t, "failed score", int64(s), e.clock.Now().UnixMilli())
	last := lastEvents(t, e.rdb, q, 3)
	wantFields(t, "failed event", last[0], map[string]string{
		"event": "failed", "jobId": id, "failedReason": "invalid event: missing actor", "prev": "active"})
	wantFields(t, "retries-exhausted event", last[1], map[string]string{
		"event": "retries-exhausted", "jobId": id, "attemptsMade": "1"})
	wantFields(t, "drained event", last[2], map[string]string{"event": "drained"})
}

func TestRetryExponentialThenFail(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("retry")
	k := q.Keys()
	id := mustAdd(t, q, "audit.export", `{}`, JobOptions{Attempts: 3,
		Backoff: &Backoff{Type: BackoffExponential, Delay: 1000}})
	c := e.consumer(q, ConsumerOptions{})

	for attempt, wantDelay := range []time.Duration{time.Second, 2 * time.Second} {
		jobs := mustFetch(t, c, 1)
		if len(jobs) != 1 {
			t.Fatalf("attempt %d: fetched %v", attempt+1, ids(jobs))
		}
		wantEqual(t, "ats", jobs[0].AttemptsStarted, attempt+1)
		d, retry := BackoffDelay(jobs[0])
		if !retry || d != wantDelay {
			t.Fatalf("attempt %d: backoff = %v, %v; want %v, true", attempt+1, d, retry, wantDelay)
		}
		reason := fmt.Sprintf("sink unavailable (attempt %d)", attempt+1)
		if err := c.Retry(ctx, jobs[0], reason, d); err != nil {
			t.Fatal(err)
		}
		due := e.clock.Now().UnixMilli() + d.Milliseconds()
		h := hgetall(t, e.rdb, k.Job(id))
		wantEqual(t, "delay", h["delay"], strconv.FormatInt(d.Milliseconds(), 10))
		wantEqual(t, "atm", h["atm"], strconv.Itoa(attempt+1))
		wantEqual(t, "failedReason", h["failedReason"], reason)
		wantEqual(t, "stacktrace entries", strings.Count(h["stacktrace"], "sink unavailable"), attempt+1)
		s, _ := zscore(t, e.rdb, k.Key("delayed"), id)
		wantEqual(t, "delayed score", int64(s), due*4096)
		wantEqual(t, "marker 1", e.rdb.ZScore(ctx, k.Key("marker"), "1").Val(), float64(due))
		wantEqual(t, "lock exists", exists(t, e.rdb, k.Job(id)+":lock"), false)
		wantEqual(t, "active exists", exists(t, e.rdb, k.Key("active")), false)
		wantFields(t, "delayed event", lastEvents(t, e.rdb, q, 1)[0], map[string]string{
			"event": "delayed", "jobId": id, "delay": strconv.FormatInt(due, 10)})
		if len(eventsNamed(t, e.rdb, q, "failed")) != 0 {
			t.Fatal("a retry must not emit failed")
		}
		e.clock.Add(d)
	}
	jobs := mustFetch(t, c, 1)
	if len(jobs) != 1 {
		t.Fatalf("third attempt: fetched %v", ids(jobs))
	}
	if _, retry := BackoffDelay(jobs[0]); retry {
		t.Fatal("third failure of attempts:3 must not retry")
	}
	noErrs(t)(c.FailFinal(ctx, jobs, []string{"sink unavailable (attempt 3)"}))
	h := hgetall(t, e.rdb, k.Job(id))
	wantEqual(t, "atm", h["atm"], "3")
	wantEqual(t, "ats", h["ats"], "3")
	wantEqual(t, "delay", h["delay"], "0")
	wantEqual(t, "stacktrace entries", strings.Count(h["stacktrace"], "sink unavailable"), 3)
	last := lastEvents(t, e.rdb, q, 3)
	wantFields(t, "failed", last[0], map[string]string{"event": "failed", "jobId": id,
		"failedReason": "sink unavailable (attempt 3)", "prev": "active"})
	wantFields(t, "retries-exhausted", last[1], map[string]string{"event": "retries-exhausted",
		"jobId": id, "attemptsMade": "3"})
}

func TestRetryNow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("retrynow")
	k := q.Keys()
	id := mustAdd(t, q, "a", `{}`, JobOptions{Attempts: 2})
	mustAdd(t, q, "b", `{}`, JobOptions{})
	c := e.consumer(q, ConsumerOptions{})
	jobs := mustFetch(t, c, 1)
	d, retry := BackoffDelay(jobs[0])
	if !retry || d != 0 {
		t.Fatalf("backoff = %v %v, want immediate retry", d, retry)
	}
	e.rdb.Del(ctx, k.Key("marker"))
	if err := c.Retry(ctx, jobs[0], "boom", 0); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "wait", fmt.Sprint(lrange(t, e.rdb, k.Key("wait"))), "[1 2]") // LPUSH: behind job 2
	wantEqual(t, "atm", e.rdb.HGet(ctx, k.Job(id), "atm").Val(), "1")
	wantEqual(t, "marker", fmt.Sprint(zrange(t, e.rdb, k.Key("marker"))), "[{0 0}]")
	wantFields(t, "waiting event", lastEvents(t, e.rdb, q, 1)[0],
		map[string]string{"event": "waiting", "jobId": id, "prev": "failed"})
}

func TestLockRenewalAndLoss(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("locks")
	k := q.Keys()
	for range 5 {
		mustAdd(t, q, "a", `{}`, JobOptions{})
	}
	c := e.consumer(q, ConsumerOptions{LockDuration: 5 * time.Second})
	jobs := mustFetch(t, c, 5)
	if _, err := c.CheckStalled(ctx); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "stalled candidates", e.rdb.SCard(ctx, k.Key("stalled")).Val(), int64(5))
	e.rdb.PExpire(ctx, k.Job("1")+":lock", 100*time.Millisecond)

	lost, err := c.ExtendLocks(ctx, jobs)
	if err != nil || len(lost) != 0 {
		t.Fatalf("extend = %v, %v", lost, err)
	}
	if pttl := e.rdb.PTTL(ctx, k.Job("1")+":lock").Val(); pttl < 4*time.Second {
		t.Errorf("lock pttl after extend = %v, want ~5s", pttl)
	}
	wantEqual(t, "stalled candidates after extend", e.rdb.SCard(ctx, k.Key("stalled")).Val(), int64(0))

	e.rdb.Del(ctx, k.Job("1")+":lock")               // expired
	e.rdb.Set(ctx, k.Job("2")+":lock", "other:0", 0) // taken over
	e.rdb.LRem(ctx, k.Key("active"), 1, "3")         // no longer active
	e.rdb.Del(ctx, k.Job("4"))                       // removed
	lost, err = c.ExtendLocks(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "lost", fmt.Sprint(lost), "[1 2]")

	errs, err := c.Complete(ctx, jobs, make([][]byte, 5))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{ErrLockMissing, ErrLockMismatch, ErrNotActive, ErrJobMissing, nil} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Errorf("job %s: error %v, want %v", jobs[i].ID, errs[i], want)
		}
	}
	wantEqual(t, "job 5 completed", e.rdb.ZScore(ctx, k.Key("completed"), "5").Err(), error(nil))
	wantEqual(t, "job 1 untouched", e.rdb.HGet(ctx, k.Job("1"), "finishedOn").Err(), error(redis.Nil))
}

// When every job of a call exists, Complete checks them and their locks with
// one command per chunk (finish.lua): the codes are those of the check job by
// job, across more than one chunk of locks.
func TestCompleteChecksALargeBatchTogether(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("locks-together")
	k := q.Keys()
	mustAddBulk(t, q, 2500, "a", JobOptions{})
	c := e.consumer(q, ConsumerOptions{LockDuration: 5 * time.Second})
	fetched := mustFetch(t, c, 2500)
	lost := map[int]error{10: ErrLockMissing, 1500: ErrLockMismatch, 2499: ErrLockMissing}
	for i, err := range lost {
		if err == ErrLockMissing {
			e.rdb.Del(ctx, k.Job(fetched[i].ID)+":lock")
		} else {
			e.rdb.Set(ctx, k.Job(fetched[i].ID)+":lock", "other:0", 0)
		}
	}
	errs, err := c.Complete(ctx, fetched, make([][]byte, len(fetched)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range fetched {
		if want := lost[i]; !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Errorf("job %d (%s): error %v, want %v", i, fetched[i].ID, errs[i], want)
		}
	}
	left := lrange(t, e.rdb, k.Key("active"))
	slices.Sort(left)
	want := []string{fetched[10].ID, fetched[1500].ID, fetched[2499].ID}
	slices.Sort(want)
	wantEqual(t, "active left", fmt.Sprint(left), fmt.Sprint(want))
}

func TestStalledRecovery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("stall")
	k := q.Keys()
	id := mustAdd(t, q, "a", `{}`, JobOptions{Attempts: 5})
	mustAdd(t, q, "b", `{}`, JobOptions{})
	c := e.consumer(q, ConsumerOptions{StalledInterval: time.Minute, MaxStalledCount: 1})
	check := func() []string {
		t.Helper()
		e.rdb.Del(ctx, k.Key("stalled-check")) // the guard; tested separately below
		rec, err := c.CheckStalled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}

	for stall := 1; stall <= 2; stall++ {
		jobs := mustFetch(t, c, 1)
		if len(jobs) != 1 || jobs[0].ID != id {
			t.Fatalf("stall %d: fetched %v", stall, ids(jobs))
		}
		if rec := check(); len(rec) != 0 {
			t.Fatalf("recovered %v while the lock is held", rec)
		}
		wantEqual(t, "stalled set", fmt.Sprint(e.rdb.SMembers(ctx, k.Key("stalled")).Val()), "["+id+"]")
		e.rdb.Del(ctx, k.Job(id)+":lock") // the worker died, its lock expired
		e.rdb.Del(ctx, k.Key("marker"))
		rec := check()
		wantEqual(t, "recovered", fmt.Sprint(rec), "["+id+"]")
		h := hgetall(t, e.rdb, k.Job(id))
		wantEqual(t, "stc", h["stc"], strconv.Itoa(stall))
		wantEqual(t, "wait (consumer end = right)", fmt.Sprint(lrange(t, e.rdb, k.Key("wait"))), "[2 "+id+"]")
		wantEqual(t, "marker", fmt.Sprint(zrange(t, e.rdb, k.Key("marker"))), "[{0 0}]")
		last := lastEvents(t, e.rdb, q, 2)
		wantFields(t, "waiting", last[0], map[string]string{"event": "waiting", "jobId": id, "prev": "active"})
		wantFields(t, "stalled", last[1], map[string]string{"event": "stalled", "jobId": id})
		if stall == 1 {
			wantEqual(t, "defa after 1 stall", h["defa"], "")
		} else {
			wantEqual(t, "defa after 2 stalls", h["defa"], "job stalled more than allowable limit")
		}
	}
	jobs := mustFetch(t, c, 1)
	wantEqual(t, "deferred failure", jobs[0].DeferredFailure, "job stalled more than allowable limit")
	if _, retry := BackoffDelay(jobs[0]); retry {
		t.Error("a job with defa must not be retried")
	}
	noErrs(t)(c.FailFinal(ctx, jobs, []string{jobs[0].DeferredFailure}))
	wantEqual(t, "defa removed", e.rdb.HExists(ctx, k.Job(id), "defa").Val(), false)

	// The guard: a second check within the interval does nothing.
	if _, err := c.CheckStalled(ctx); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "guard set", exists(t, e.rdb, k.Key("stalled-check")), true)
	e.rdb.SAdd(ctx, k.Key("stalled"), "zzz")
	if rec, err := c.CheckStalled(ctx); err != nil || len(rec) != 0 {
		t.Fatalf("guarded check = %v, %v", rec, err)
	}
	wantEqual(t, "candidates untouched", e.rdb.SIsMember(ctx, k.Key("stalled"), "zzz").Val(), true)
}

func TestPausedQueue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("paused")
	k := q.Keys()
	mustAdd(t, q, "a", `{}`, JobOptions{})
	mustAdd(t, q, "b", `{}`, JobOptions{})
	// Pause as Node v5 does it.
	e.rdb.Rename(ctx, k.Key("wait"), k.Key("paused"))
	e.rdb.HSet(ctx, k.Key("meta"), "paused", 1)
	e.rdb.Del(ctx, k.Key("marker"))

	c := e.consumer(q, ConsumerOptions{})
	if jobs := mustFetch(t, c, 5); len(jobs) != 0 {
		t.Fatalf("fetched %v from a paused queue", ids(jobs))
	}
	mustAdd(t, q, "c", `{}`, JobOptions{})
	wantEqual(t, "paused list", fmt.Sprint(lrange(t, e.rdb, k.Key("paused"))), "[3 2 1]")
	wantEqual(t, "marker while paused", exists(t, e.rdb, k.Key("marker")), false)
	wantEqual(t, "wait while paused", exists(t, e.rdb, k.Key("wait")), false)

	e.rdb.Rename(ctx, k.Key("paused"), k.Key("wait"))
	e.rdb.HDel(ctx, k.Key("meta"), "paused")
	wantEqual(t, "after resume", fmt.Sprint(ids(mustFetch(t, c, 5))), "[1 2 3]")
}

func TestGlobalConcurrency(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("conc")
	for range 5 {
		mustAdd(t, q, "a", `{}`, JobOptions{})
	}
	e.rdb.HSet(ctx, q.Keys().Key("meta"), "concurrency", 2)
	c := e.consumer(q, ConsumerOptions{})
	wantEqual(t, "fetched", len(mustFetch(t, c, 5)), 2)
	wantEqual(t, "fetched when maxed", len(mustFetch(t, c, 5)), 0)
}

func TestMoveToWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("giveback")
	k := q.Keys()
	mustAdd(t, q, "a", `{}`, JobOptions{})
	mustAdd(t, q, "b", `{}`, JobOptions{})
	mustAdd(t, q, "p", `{}`, JobOptions{Priority: 3})
	c := e.consumer(q, ConsumerOptions{})
	jobs := mustFetch(t, c, 1)
	e.rdb.Del(ctx, k.Key("marker"))
	if err := c.MoveToWait(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "wait", fmt.Sprint(lrange(t, e.rdb, k.Key("wait"))), "[2 1]")
	h := hgetall(t, e.rdb, k.Job("1"))
	wantEqual(t, "atm", h["atm"], "")
	wantEqual(t, "lock exists", exists(t, e.rdb, k.Job("1")+":lock"), false)
	wantEqual(t, "marker", fmt.Sprint(zrange(t, e.rdb, k.Key("marker"))), "[{0 0}]")
	wantFields(t, "waiting", lastEvents(t, e.rdb, q, 1)[0],
		map[string]string{"event": "waiting", "jobId": "1", "prev": "active"})
	if err := c.MoveToWait(ctx, jobs); !errors.Is(err, ErrLockMissing) {
		t.Errorf("second move = %v, want ErrLockMissing", err)
	}

	all := mustFetch(t, c, 3)
	wantEqual(t, "order", fmt.Sprint(ids(all)), "[1 2 3]")
	if err := c.MoveToWait(ctx, all[2:]); err != nil {
		t.Fatal(err)
	}
	s, _ := zscore(t, e.rdb, k.Key("prioritized"), "3")
	wantEqual(t, "prioritized score", int64(s), int64(3)<<32)
}

func TestWaitWakesOnAdd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.realQueue("wake")
	c := e.consumer(q, ConsumerOptions{WorkerName: "go-1"})

	type result struct {
		woke bool
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		woke, err := c.Wait(ctx, 10*time.Second)
		done <- result{woke, err, time.Since(start)}
	}()
	// The blocking connection is named so Node's Queue.getWorkers() sees it;
	// the job is added once it blocks, so that the add is what wakes it.
	name := "name=" + e.prefix + ":d2FrZQ==:w:go-1 "
	testenv.EventuallyNil(t, 10*time.Second, func() error {
		list := e.rdb.ClientList(ctx).Val()
		for line := range strings.Lines(list) {
			if strings.Contains(line, name) && strings.Contains(line, " flags=b ") {
				return nil
			}
		}
		return fmt.Errorf("CLIENT LIST has no blocked worker connection named %s:d2FrZQ==:w:go-1:\n%s", e.prefix, list)
	})
	mustAdd(t, q, "a", `{}`, JobOptions{})
	r := <-done
	if r.err != nil || !r.woke || r.took > 5*time.Second {
		t.Fatalf("Wait = %v, %v after %v", r.woke, r.err, r.took)
	}
	wantEqual(t, "fetched", len(mustFetch(t, c, 1)), 1)

	// A delayed job: Wait sleeps until it is due (marker "1"), not the full timeout.
	// The first Wait may return at once (the fetch above re-added marker "0");
	// the empty Fetch then tells the consumer the due time.
	mustAdd(t, q, "b", `{}`, JobOptions{Delay: 300 * time.Millisecond})
	start := time.Now()
	var got []*Job
	for round := 0; len(got) == 0; round++ {
		if round == 3 {
			t.Fatalf("no delayed job after %d wait rounds", round)
		}
		if _, err := c.Wait(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		got = mustFetch(t, c, 1)
	}
	if took := time.Since(start); took > 2*time.Second || took < 250*time.Millisecond {
		t.Fatalf("delayed job fetched after %v, want ~300ms", took)
	}

	// A timeout reports false; cancellation returns promptly.
	e.rdb.Del(ctx, q.Keys().Key("marker")) // the "0" the last fetch re-added
	woke, err := c.Wait(ctx, 50*time.Millisecond)
	if err != nil || woke {
		t.Fatalf("Wait on empty queue = %v, %v", woke, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := c.Wait(cctx, 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled Wait = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancelled Wait took %v", took)
	}
	// The next Wait adopts the abandoned call, which sees this add.
	mustAdd(t, q, "c", `{}`, JobOptions{})
	woke, err = c.Wait(ctx, 5*time.Second)
	if err != nil || !woke {
		t.Fatalf("Wait after cancellation = %v, %v", woke, err)
	}

	// Close ends an abandoned call at once.
	c2 := e.consumer(q, ConsumerOptions{})
	cctx2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := c2.Wait(cctx2, 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled Wait = %v", err)
	}
	start = time.Now()
	if err := c2.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close with an abandoned Wait took %v", took)
	}
}

func TestHashTaggedQueueName(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("{audit-events}")
	k := q.Keys()
	id := mustAdd(t, q, "a", `{"x":1}`, JobOptions{Attempts: 2, Backoff: &Backoff{Type: BackoffFixed, Delay: 10}})
	mustAdd(t, q, "b", `{}`, JobOptions{Delay: time.Second, Priority: 2})
	c := e.consumer(q, ConsumerOptions{})
	jobs := mustFetch(t, c, 1)
	if err := c.Retry(ctx, jobs[0], "x", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Second)
	jobs = mustFetch(t, c, 5)
	if len(jobs) != 2 {
		t.Fatalf("fetched %v", ids(jobs))
	}
	noErrs(t)(c.Complete(ctx, jobs, [][]byte{nil, nil}))
	if _, err := c.CheckStalled(ctx); err != nil {
		t.Fatal(err)
	}
	keys := e.rdb.Keys(ctx, e.prefix+"*").Val()
	if len(keys) < 5 {
		t.Fatalf("keys = %v", keys)
	}
	for _, key := range keys {
		// Redis Cluster hashes only the first {...} of a key.
		open := strings.IndexByte(key, '{')
		end := strings.IndexByte(key[open+1:], '}')
		if open < 0 || end < 0 || key[open:open+end+2] != "{audit-events}" {
			t.Errorf("key %s does not hash by {audit-events}", key)
		}
	}
	wantEqual(t, "job key", k.Job(id), e.prefix+":{audit-events}:1")
}

func TestCustomJobIDIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("dlq")
	k := q.Keys()
	opts := JobOptions{JobID: "dead-letter-42", RemoveOnFail: KeepAll()}
	first := mustAdd(t, q, "dead-letter", `{"v":1}`, opts)
	second := mustAdd(t, q, "dead-letter", `{"v":2}`, opts)
	wantEqual(t, "ids", first+" "+second, "dead-letter-42 dead-letter-42")
	wantEqual(t, "data kept", e.rdb.HGet(ctx, k.Job(first), "data").Val(), `{"v":1}`)
	wantEqual(t, "counter still moves", e.rdb.Get(ctx, k.Key("id")).Val(), "2")
	wantEqual(t, "wait", fmt.Sprint(lrange(t, e.rdb, k.Key("wait"))), "[dead-letter-42]")
	wantFields(t, "duplicated", lastEvents(t, e.rdb, q, 1)[0],
		map[string]string{"event": "duplicated", "jobId": first})
	wantEqual(t, "stored jobId", strings.Contains(e.rdb.HGet(ctx, k.Job(first), "opts").Val(), `"jobId":"dead-letter-42"`), true)

	for _, bad := range []string{"0", "0:x", "a:b", "42"} {
		if _, err := q.Add(ctx, "x", nil, JobOptions{JobID: bad}); err == nil {
			t.Errorf("custom id %q accepted", bad)
		}
	}
}

func TestAddBulkAfterScriptFlush(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("bulk")
	// Scripts are gone (Redis restart, SCRIPT FLUSH): the pipeline must recover.
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := q.AddBulk(ctx, []NewJob{
		{Name: "a", Data: []byte(`{"i":1}`)},
		{Name: "b", Data: []byte(`{"i":2}`), Opts: JobOptions{Priority: 1}},
		{Name: "c", Opts: JobOptions{JobID: "custom-c"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ids", fmt.Sprint(got), "[1 2 custom-c]")
	wantEqual(t, "data default", e.rdb.HGet(ctx, q.Keys().Job("custom-c"), "data").Val(), "{}")
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c := e.consumer(q, ConsumerOptions{})
	wantEqual(t, "fetched after flush", fmt.Sprint(ids(mustFetch(t, c, 5))), "[1 custom-c 2]")
}

func TestEventsStreamIsTrimmed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("trim")
	k := q.Keys()
	mustAdd(t, q, "a", `{}`, JobOptions{})
	e.rdb.HSet(ctx, k.Key("meta"), "opts.maxLenEvents", 10)
	mustAddBulk(t, q, 300, "a", JobOptions{})
	c := e.consumer(q, ConsumerOptions{})
	for {
		batch := mustFetch(t, c, 100)
		if len(batch) == 0 {
			break
		}
		noErrs(t)(c.Complete(ctx, batch, make([][]byte, len(batch))))
	}
	// Approximate trimming works on whole stream nodes (100 entries by default).
	if n := e.rdb.XLen(ctx, k.Key("events")).Val(); n > 400 {
		t.Errorf("events stream has %d entries with maxLenEvents 10", n)
	}
}
