package queueworker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/sqlite"
)

const hmacKey = "test-secret-key-for-testing-purposes-only"

// flakyStore is a real SQLite store that can be told to fail like a store that is down.
type flakyStore struct {
	*sqlite.Store
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flakyStore) StoreBatch(ctx context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, audit.Errorf(audit.CodeUnavailable, "store batch: connection refused")
	}
	return f.Store.StoreBatch(ctx, b)
}

type fixture struct {
	rdb        *redis.Client
	main, dlq  *bullmq.Queue
	store      *flakyStore
	breaker    *pipeline.Breaker
	gen        *eventgen.Generator
	handlerFor func(rules audit.Rules) *Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	prefix := testenv.RedisKeyPrefix(t)
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{
		rdb:     rdb,
		main:    bullmq.NewQueue(rdb, "audit-events", bullmq.QueueOptions{Prefix: prefix}),
		dlq:     bullmq.NewQueue(rdb, "audit-events-failed", bullmq.QueueOptions{Prefix: prefix}),
		store:   &flakyStore{Store: st},
		breaker: pipeline.NewBreaker(pipeline.BreakerConfig{FailureThreshold: 2, RecoveryTimeout: 200 * time.Millisecond}),
		gen:     eventgen.New(11),
	}
	f.gen.HMACKey = []byte(hmacKey)
	f.handlerFor = func(rules audit.Rules) *Handler {
		proc := pipeline.NewProcessor(f.store, pipeline.Config{Rules: rules, HMACKey: []byte(hmacKey), Breaker: f.breaker})
		return NewHandler(Config{Processor: proc, Queue: "audit-events", DeadLetters: f.dlq, AlertThreshold: 1})
	}
	return f
}

func (f *fixture) add(t *testing.T, payloads ...[]byte) []string {
	t.Helper()
	jobs := make([]bullmq.NewJob, len(payloads))
	for i, p := range payloads {
		// As the Node producers add them.
		jobs[i] = bullmq.NewJob{Name: "audit-events", Data: p, Opts: bullmq.JobOptions{
			Attempts: 1, RemoveOnComplete: bullmq.KeepLast(100), RemoveOnFail: bullmq.KeepAll()}}
	}
	ids, err := f.main.AddBulk(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (f *fixture) run(t *testing.T, h *Handler) (stop func()) {
	t.Helper()
	c, err := bullmq.NewConsumer(f.main, bullmq.ConsumerOptions{WorkerName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w := bullmq.NewWorker(c, h, bullmq.WorkerOptions{BatchSize: 50, Concurrency: 2, Gate: f.breaker.Wait,
		DrainDelay: 50 * time.Millisecond, RetryBackoffMin: 10 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); c.Close(); close(done) }()
	return func() { cancel(); <-done }
}

func (f *fixture) counts(t *testing.T, q *bullmq.Queue) map[string]int64 {
	t.Helper()
	c, err := q.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) stored(t *testing.T) []audit.StoredEvent {
	t.Helper()
	events, err := f.store.ListEvents(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// eventually waits for cond with this package's timeout (testenv.Eventually).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, what, cond)
}

func TestJobsAreStoredAndRefusedOnesDeadLettered(t *testing.T) {
	f := newFixture(t)
	invalid, _ := f.gen.Invalid()
	var payloads [][]byte
	for range 120 {
		payloads = append(payloads, f.gen.Valid())
	}
	payloads = append(payloads, invalid, f.gen.Tampered(), []byte(`"not an object"`))
	ids := f.add(t, payloads...)
	stop := f.run(t, f.handlerFor(audit.DefaultRules()))
	defer stop()
	eventually(t, "all jobs finished", func() bool {
		c := f.counts(t, f.main)
		return c[bullmq.StateFailed] == 3 && c[bullmq.StateWaiting] == 0 && c[bullmq.StateActive] == 0
	})
	if n := len(f.stored(t)); n != 120 {
		t.Fatalf("%d events stored, want 120", n)
	}
	if c := f.counts(t, f.main); c[bullmq.StateCompleted] != 100 {
		t.Errorf("completed kept = %d, want 100 (removeOnComplete: 100)", c[bullmq.StateCompleted])
	}
	ctx := context.Background()
	last, err := f.main.GetJob(ctx, ids[119])
	if err != nil {
		t.Fatal(err)
	}
	var rv struct {
		Status string
		Seq    int64
	}
	json.Unmarshal([]byte(f.rdb.HGet(ctx, f.main.Keys().Job(last.ID), "returnvalue").Val()), &rv)
	if rv.Status != "stored" || rv.Seq == 0 {
		t.Errorf("returnvalue = %+v", rv)
	}
	tampered, _ := f.main.GetJob(ctx, ids[121])
	if reason := f.rdb.HGet(ctx, f.main.Keys().Job(tampered.ID), "failedReason").Val(); !strings.HasPrefix(reason, "integrity_violation") {
		t.Errorf("tampered job failedReason = %q", reason)
	}

	entries, err := ListDeadLetters(ctx, f.dlq, "", 0)
	if err != nil || len(entries) != 3 {
		t.Fatalf("dead letters: %d, %v; want 3", len(entries), err)
	}
	e := entries[1]
	if e.Payload.ReasonCode != audit.ReasonIntegrityViolation || e.Payload.OriginalJobID != ids[121] ||
		e.Payload.OriginalQueueName != "audit-events" || e.Payload.FailureCount != 1 ||
		string(e.Payload.OriginalEvent) != string(payloads[121]) || len(e.Payload.Metadata.RetryHistory) != 1 {
		t.Errorf("dead letter = %+v", e.Payload)
	}
	dlJob, _ := f.dlq.GetJob(ctx, e.JobID)
	if dlJob.Name != DeadLetterJobName {
		t.Errorf("dead letter job name = %q", dlJob.Name)
	}
	if only, _ := ListDeadLetters(ctx, f.dlq, audit.ReasonValidation, 0); len(only) != 2 {
		t.Errorf("validation dead letters = %d, want 2", len(only))
	}
	dead, _ := f.store.ListDeadLetters(ctx, 0, 10)
	if len(dead) != 3 {
		t.Errorf("store dead letters = %d, want 3", len(dead))
	}
}

// A crash between commit and acknowledgement re-delivers the job: it is
// reported as a duplicate and stored once.
func TestRedeliveryIsStoredOnce(t *testing.T) {
	f := newFixture(t)
	ids := f.add(t, f.gen.Valid(), f.gen.Valid())
	h := f.handlerFor(audit.DefaultRules())
	c, err := bullmq.NewConsumer(f.main, bullmq.ConsumerOptions{LockDuration: 200 * time.Millisecond, StalledInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	jobs, _ := c.Fetch(ctx, 10)
	if _, err := h.Handle(ctx, jobs); err != nil { // committed, then "crash": never acknowledged
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // the locks expire
	c.CheckStalled(ctx)
	time.Sleep(60 * time.Millisecond)
	if recovered, _ := c.CheckStalled(ctx); len(recovered) != 2 {
		t.Fatalf("recovered %v, want both jobs", recovered)
	}
	again, _ := c.Fetch(ctx, 10)
	results, err := h.Handle(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if string(r.ReturnValue) != `{"status":"duplicate"}` {
			t.Errorf("job %s re-run: %s", again[i].ID, r.ReturnValue)
		}
	}
	if n := len(f.stored(t)); n != 2 {
		t.Fatalf("%d rows after redelivery of %v, want 2", n, ids)
	}
}

// While the store is down nothing is lost, nothing is dead-lettered, no attempt
// is burned, and processing resumes by itself.
func TestStoreOutageLosesNothing(t *testing.T) {
	f := newFixture(t)
	f.store.down.Store(true)
	var payloads [][]byte
	for range 200 {
		payloads = append(payloads, f.gen.Valid())
	}
	f.add(t, payloads...)
	stop := f.run(t, f.handlerFor(audit.DefaultRules()))
	defer stop()
	eventually(t, "the breaker to open", func() bool { return f.breaker.State() == pipeline.BreakerOpen })
	time.Sleep(300 * time.Millisecond)
	calls := f.store.calls.Load()
	if calls > 10 {
		t.Errorf("%d store calls during the outage: the breaker should hold them back", calls)
	}
	if c := f.counts(t, f.main); c[bullmq.StateFailed] != 0 || c[bullmq.StateCompleted] != 0 {
		t.Fatalf("jobs finished during the outage: %v", c)
	}
	f.store.down.Store(false)
	eventually(t, "all stored", func() bool { return len(f.stored(t)) == 200 })
	eventually(t, "all completed", func() bool {
		c := f.counts(t, f.main)
		return c[bullmq.StateActive] == 0 && c[bullmq.StateWaiting] == 0
	})
	if c := f.counts(t, f.dlq); c[bullmq.StateWaiting] != 0 {
		t.Errorf("%d dead letters after an outage", c[bullmq.StateWaiting])
	}
	if c := f.counts(t, f.main); c[bullmq.StateFailed] != 0 {
		t.Errorf("%d failed jobs after an outage", c[bullmq.StateFailed])
	}
	for _, id := range []string{"1", "200"} {
		if atm := f.rdb.HGet(context.Background(), f.main.Keys().Job(id), "atm").Val(); atm != "1" && atm != "" {
			t.Errorf("job %s atm = %s, want 1 (no attempt burned by the outage)", id, atm)
		}
	}
}

// Events refused under a too-strict configuration are stored exactly once after
// the fix, however often the redrive runs.
func TestRedriveAfterFix(t *testing.T) {
	f := newFixture(t)
	strict := audit.DefaultRules()
	strict.MaxStringLength = 20 // every generated event has a longer outcomeDescription
	f.add(t, f.gen.Valid(), f.gen.Valid(), f.gen.Tampered())
	stop := f.run(t, f.handlerFor(strict))
	eventually(t, "3 dead letters", func() bool { return f.counts(t, f.dlq)[bullmq.StateWaiting] == 3 })
	stop()

	ctx := context.Background()
	// All three broke the length rule; once redriven, the tampered one is an
	// integrity violation and comes back to the dead-letter queue as such.
	fixed, err := ListDeadLetters(ctx, f.dlq, audit.ReasonValidation, 10)
	if err != nil || len(fixed) != 3 {
		t.Fatalf("validation dead letters: %d %v", len(fixed), err)
	}
	for range 2 { // twice, as an operator might
		if _, err := Redrive(ctx, f.dlq, f.main, fixed); err != nil {
			t.Fatal(err)
		}
	}
	stop = f.run(t, f.handlerFor(audit.DefaultRules()))
	defer stop()
	eventually(t, "2 stored", func() bool { return len(f.stored(t)) == 2 })
	eventually(t, "the tampered one dead-lettered again", func() bool { return f.counts(t, f.dlq)[bullmq.StateWaiting] == 1 })
	// Redrive once more after they were stored: still 2 rows.
	if _, err := Redrive(ctx, f.dlq, f.main, fixed); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(f.stored(t)); n != 2 {
		t.Fatalf("%d rows after repeated redrives, want 2", n)
	}
	left, _ := ListDeadLetters(ctx, f.dlq, "", 0)
	if len(left) != 1 || left[0].Payload.ReasonCode != audit.ReasonIntegrityViolation {
		t.Errorf("left in the dead-letter queue: %+v", left)
	}
}

// A warning is logged once the dead-letter queue reaches the alert threshold,
// which can be changed while running.
func TestDeadLetterAlertThreshold(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	proc := pipeline.NewProcessor(f.store, pipeline.Config{Rules: audit.DefaultRules()})
	h := NewHandler(Config{Processor: proc, Queue: "audit-events", DeadLetters: f.dlq, AlertThreshold: 3,
		AlertInterval: time.Nanosecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	invalid := func() []byte { b, _ := f.gen.Invalid(); return b }
	f.add(t, invalid(), invalid())
	c, err := bullmq.NewConsumer(f.main, bullmq.ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	jobs, _ := c.Fetch(ctx, 10)
	if _, err := h.Handle(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "alert threshold") {
		t.Fatalf("warned below the threshold: %s", logs.String())
	}
	h.SetAlertThreshold(2)
	f.add(t, invalid())
	jobs, _ = c.Fetch(ctx, 10)
	if _, err := h.Handle(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "dead-letter queue above its alert threshold") || !strings.Contains(logs.String(), "depth=3") {
		t.Errorf("no warning at depth 3 with threshold 2: %s", logs.String())
	}
}
