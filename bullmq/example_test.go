package bullmq_test

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

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
