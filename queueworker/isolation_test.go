package queueworker

import (
	"context"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/pipeline"
)

// addKeepingAll adds jobs as the Node producers do, but keeps every completed
// job so that the test can count them.
func (f *fixture) addKeepingAll(t *testing.T, payloads ...[]byte) []string {
	t.Helper()
	jobs := make([]bullmq.NewJob, len(payloads))
	for i, p := range payloads {
		jobs[i] = bullmq.NewJob{Name: "audit-events", Data: p, Opts: bullmq.JobOptions{
			Attempts: 1, RemoveOnComplete: bullmq.KeepAll(), RemoveOnFail: bullmq.KeepAll()}}
	}
	ids, err := f.main.AddBulk(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// runWith runs a worker over the main queue with h, batchSize jobs a batch
// and two batches in flight, until the returned function is called.
func (f *fixture) runWith(t *testing.T, h bullmq.Handler, batchSize int) (stop func()) {
	t.Helper()
	c, err := bullmq.NewConsumer(f.main, bullmq.ConsumerOptions{WorkerName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w := bullmq.NewWorker(c, h, bullmq.WorkerOptions{BatchSize: batchSize, Concurrency: 2, Gate: f.breaker.Wait,
		DrainDelay: 50 * time.Millisecond, RetryBackoffMin: 10 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); c.Close(); close(done) }()
	return func() { cancel(); <-done }
}

// waitFinished waits, at most 60 s, until the main queue holds completed and
// failed jobs and nothing else.
func (f *fixture) waitFinished(t *testing.T, completed, failed int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := f.counts(t, f.main)
		if c[bullmq.StateCompleted] == completed && c[bullmq.StateFailed] == failed &&
			c[bullmq.StateWaiting] == 0 && c[bullmq.StateActive] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue stalled: %v after 60 s, want %d completed and %d failed", c, completed, failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func refusedPayload(f *fixture) []byte {
	fields := f.gen.Fields()
	fields["principalId"] = storetest.RefusedPrincipal
	return f.gen.Seal(fields)
}

// A batch of 1,000 jobs, one of which the store refuses: that job alone fails,
// without retry, with its entry in the dead-letter queue; 999 complete.
func TestStoreRefusedJobFailsAloneIntoTheDeadLetterQueue(t *testing.T) {
	for _, kind := range teststores.Refusing {
		t.Run(kind.Name, func(t *testing.T) {
			f := newFixture(t)
			s := kind.Open(t)
			proc := pipeline.NewProcessor(s, pipeline.Config{Rules: audit.DefaultRules(), HMACKey: []byte(hmacKey), Breaker: f.breaker})
			h := NewHandler(Config{Processor: proc, Queue: "audit-events", DeadLetters: f.dlq})
			payloads := make([][]byte, 1000)
			for i := range payloads {
				payloads[i] = f.gen.Valid()
			}
			const bad = 777
			payloads[bad] = refusedPayload(f)
			ids := f.addKeepingAll(t, payloads...)
			stop := f.runWith(t, h, 1000)
			defer stop()
			f.waitFinished(t, 999, 1)

			ctx := context.Background()
			job := f.main.Keys().Job(ids[bad])
			if reason := f.rdb.HGet(ctx, job, "failedReason").Val(); !strings.HasPrefix(reason, audit.ReasonStoreRefused+": ") ||
				!strings.Contains(reason, storetest.RefusalMessage) {
				t.Errorf("failedReason %q, want store_refused with the database's reason", reason)
			}
			if atm := f.rdb.HGet(ctx, job, "atm").Val(); atm != "1" {
				t.Errorf("refused job atm %s, want 1 (failed at once)", atm)
			}
			entries, err := ListDeadLetters(ctx, f.dlq, "", 0)
			if err != nil || len(entries) != 1 {
				t.Fatalf("dead-letter queue: %d entries, %v; want 1", len(entries), err)
			}
			p := entries[0].Payload
			if p.ReasonCode != audit.ReasonStoreRefused || p.OriginalJobID != ids[bad] ||
				string(p.OriginalEvent) != string(payloads[bad]) || !strings.Contains(p.FailureReason, storetest.RefusalMessage) {
				t.Errorf("dead-letter entry %+v, want the refused job's event and the database's reason", p)
			}
			if events, err := s.ListEvents(ctx, 0, 2000); err != nil || len(events) != 999 {
				t.Errorf("%d events stored (%v), want 999", len(events), err)
			}
			if state := f.breaker.State(); state != pipeline.BreakerClosed {
				t.Errorf("breaker %s, want CLOSED", state)
			}
		})
	}
}

// poisonous is the real handler, except that a batch holding a poison job
// fails: "poison-error" with an error that is not transient, "poison-panic"
// by panicking, as a bug would.
type poisonous struct{ *Handler }

func (p poisonous) Handle(ctx context.Context, jobs []*bullmq.Job) ([]bullmq.Result, error) {
	for _, j := range jobs {
		switch string(j.Data) {
		case `"poison-error"`:
			return nil, audit.Errorf(audit.CodeInvalid, "job %s cannot be handled", j.ID)
		case `"poison-panic"`:
			panic("job " + j.ID + " crashes the handler")
		}
	}
	return p.Handler.Handle(ctx, jobs)
}

// Three poison jobs among 300 valid ones, two batches in flight: the poison
// jobs fail and are dead-lettered with processing_failed, the 300 are stored
// and completed, and the queue drains in bounded time.
func TestPoisonJobsFailAloneAndTheQueueDrains(t *testing.T) {
	f := newFixture(t)
	h := poisonous{f.handlerFor(audit.DefaultRules())}
	var payloads [][]byte
	poison := map[int]string{10: `"poison-error"`, 155: `"poison-panic"`, 299: `"poison-error"`}
	for i := range 303 {
		if p, ok := poison[i]; ok {
			payloads = append(payloads, []byte(p))
			continue
		}
		payloads = append(payloads, f.gen.Valid())
	}
	ids := f.addKeepingAll(t, payloads...)
	start := time.Now()
	stop := f.runWith(t, h, 50)
	defer stop()
	f.waitFinished(t, 300, 3)
	t.Logf("300 valid and 3 poison jobs drained in %v", time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	entries, err := ListDeadLetters(ctx, f.dlq, audit.ReasonProcessingFailed, 0)
	if err != nil || len(entries) != 3 {
		t.Fatalf("dead-letter queue: %d processing_failed entries, %v; want 3", len(entries), err)
	}
	byJob := map[string]DeadLetterPayload{}
	for _, e := range entries {
		byJob[e.Payload.OriginalJobID] = e.Payload
	}
	for i, kind := range poison {
		id := ids[i]
		want := "job " + id + " cannot be handled"
		if kind == `"poison-panic"` {
			want = "handler panicked: job " + id + " crashes the handler"
		}
		reason := f.rdb.HGet(ctx, f.main.Keys().Job(id), "failedReason").Val()
		if !strings.Contains(reason, want) || !strings.Contains(byJob[id].FailureReason, want) ||
			string(byJob[id].OriginalEvent) != kind {
			t.Errorf("poison job %s: failedReason %q, dead letter %+v; want both to say %q", id, reason, byJob[id], want)
		}
	}
	if n := len(f.stored(t)); n != 300 {
		t.Errorf("%d events stored, want 300", n)
	}
}

// A store outage is waited out however many times the batch is offered: its
// errors are transient, so the batch is never split and no job fails.
func TestStoreOutageOutlastsTheAttemptBound(t *testing.T) {
	f := newFixture(t)
	f.store.down.Store(true)
	proc := pipeline.NewProcessor(f.store, pipeline.Config{Rules: audit.DefaultRules(), HMACKey: []byte(hmacKey)}) // no breaker: every offer reaches the store
	h := NewHandler(Config{Processor: proc, Queue: "audit-events", DeadLetters: f.dlq})
	var payloads [][]byte
	for range 20 {
		payloads = append(payloads, f.gen.Valid())
	}
	ids := f.addKeepingAll(t, payloads...)
	stop := f.runWith(t, h, 10)
	defer stop()
	eventually(t, "the batches offered 4 times the attempt bound", func() bool { return f.store.calls.Load() >= 40 })
	if c := f.counts(t, f.main); c[bullmq.StateFailed] != 0 || c[bullmq.StateCompleted] != 0 {
		t.Fatalf("jobs finished during the outage: %v", c)
	}
	f.store.down.Store(false)
	f.waitFinished(t, 20, 0)
	if atm := f.rdb.HGet(context.Background(), f.main.Keys().Job(ids[0]), "atm").Val(); atm != "1" {
		t.Errorf("atm = %s, want 1: the outage burned no attempt", atm)
	}
}
