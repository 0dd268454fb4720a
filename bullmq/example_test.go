package bullmq_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
)

// A producer adds jobs the way Node's Queue.add does.
func ExampleQueue_Add() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	q := bullmq.NewQueue(rdb, "audit-events", bullmq.QueueOptions{})
	id, err := q.Add(ctx, "audit-events", []byte(`{"action":"login"}`), bullmq.JobOptions{
		Attempts:         3,
		Backoff:          &bullmq.Backoff{Type: bullmq.BackoffExponential, Delay: 1000},
		RemoveOnComplete: bullmq.KeepLast(100),
		RemoveOnFail:     bullmq.KeepAll(),
	})
	if err != nil {
		slog.Error("add", "err", err)
		return
	}
	slog.Info("added", "id", id)
}

// A Go service produces audit events for the worker as the Node producers
// do: each event carries the producer hash of its critical fields and, with
// the shared key, an HMAC-SHA256 signature of that hash; the jobs use the
// producers' options. A custom job id makes a retried AddBulk add each event
// once. (It needs a Redis at 127.0.0.1:6379, hence no checked output: the
// worker's tests cover what it does.)
func ExampleQueue_AddBulk() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	q := bullmq.NewQueue(rdb, "audit-events", bullmq.QueueOptions{})
	key := []byte("the-producers-hmac-key-of-at-least-32-chars") // security.encryptionKey

	type event struct {
		Timestamp   string `json:"timestamp"`
		Action      string `json:"action"`
		Status      string `json:"status"`
		PrincipalID string `json:"principalId"`
		Hash        string `json:"hash,omitempty"`
		HashAlgo    string `json:"hashAlgorithm,omitempty"`
		Signature   string `json:"signature,omitempty"`
	}
	var jobs []bullmq.NewJob
	for _, principal := range []string{"user-1", "user-2"} {
		ev := event{Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), Action: "userLogin",
			Status: "success", PrincipalID: principal}
		unsigned, _ := json.Marshal(ev) // a struct of strings always marshals
		hash, err := audit.HashPayload(unsigned)
		if err != nil {
			slog.Error("hash", "err", err)
			return
		}
		ev.Hash, ev.HashAlgo, ev.Signature = hash, "SHA-256", audit.Sign(hash, key)
		data, _ := json.Marshal(ev)
		jobs = append(jobs, bullmq.NewJob{Name: q.Name(), Data: data, Opts: bullmq.JobOptions{
			Attempts:         1,
			RemoveOnComplete: bullmq.KeepLast(100),
			RemoveOnFail:     bullmq.KeepAll(),
			JobID:            "event-" + hash, // the same event added again is not added twice
		}})
	}
	ids, err := q.AddBulk(ctx, jobs)
	if err != nil {
		slog.Error("add bulk", "err", err)
		return
	}
	slog.Info("added", "ids", ids)
}

// A consumer loop: wait for work, fetch a batch, handle it, then complete, retry
// or fail each job. Lock renewal (ExtendLocks every LockDuration/4) and the
// stalled check (CheckStalled every StalledInterval) run beside it.
func ExampleConsumer() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	q := bullmq.NewQueue(rdb, "audit-events", bullmq.QueueOptions{})
	c, err := bullmq.NewConsumer(q, bullmq.ConsumerOptions{WorkerName: "audit-worker-1"})
	if err != nil {
		slog.Error("consumer", "err", err)
		return
	}
	defer c.Close()
	handle := func(j *bullmq.Job) ([]byte, error) { return []byte(`{"stored":true}`), nil }

	for ctx.Err() == nil {
		jobs, err := c.Fetch(ctx, 100)
		if err != nil {
			slog.Error("fetch", "err", err)
			time.Sleep(time.Second)
			continue
		}
		if len(jobs) == 0 {
			_, _ = c.Wait(ctx, 5*time.Second) // then fetch again, woken or not
			continue
		}
		for _, j := range jobs {
			reason, unsupported := j.Unsupported()
			if j.DeferredFailure != "" {
				reason, unsupported = j.DeferredFailure, true
			}
			if unsupported {
				_, _ = c.FailFinal(ctx, []*bullmq.Job{j}, []string{reason})
				continue
			}
			result, err := handle(j)
			if err == nil {
				errs, err := c.Complete(ctx, []*bullmq.Job{j}, [][]byte{result})
				if err == nil && errors.Is(errs[0], bullmq.ErrLockMissing) {
					slog.Warn("lock lost; the job was recovered elsewhere", "job", j.ID)
				}
				continue
			}
			if delay, retry := bullmq.BackoffDelay(j); retry {
				_ = c.Retry(ctx, j, err.Error(), delay)
			} else {
				_, _ = c.FailFinal(ctx, []*bullmq.Job{j}, []string{err.Error()})
			}
		}
	}
}
