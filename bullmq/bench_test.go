package bullmq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// roundTrips counts client round trips: one per command, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkFetchCompleteBatch measures the consumer's hot path: fetch a batch of
// jobs in one call and complete them in one call (removeOnComplete 100, as the
// Node producers set it), refilling the queue with 1000 jobs outside the timer.
// batch=1 is the one-job-per-call baseline.
func BenchmarkFetchCompleteBatch(b *testing.B) {
	for _, batch := range []int{100, 1} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchFetchComplete(b, batch) })
	}
}

func benchFetchComplete(b *testing.B, batch int) {
	const total = 1000
	e := newEnv(b)
	ctx := context.Background()
	q := e.realQueue("bench")
	c := e.consumer(q, ConsumerOptions{WorkerName: "bench"})
	jobs := make([]NewJob, total)
	for i := range jobs {
		jobs[i] = NewJob{Name: "bench",
			Data: []byte(`{"id":"evt","actor":"alice","action":"login","ts":"2026-01-01T00:00:00Z"}`),
			Opts: JobOptions{Attempts: 1, RemoveOnComplete: KeepLast(100), RemoveOnFail: KeepAll()}}
	}
	values := make([][]byte, batch)
	for i := range values {
		values[i] = []byte(`{"stored":true}`)
	}
	rt := &roundTrips{}
	e.rdb.AddHook(rt)

	var processed, trips int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%(total/batch) == 0 {
			b.StopTimer()
			if _, err := q.AddBulk(ctx, jobs); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		before := rt.n.Load()
		got, err := c.Fetch(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != batch {
			b.Fatalf("fetched %d jobs, want %d", len(got), batch)
		}
		errs, err := c.Complete(ctx, got, values)
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		trips += rt.n.Load() - before
		processed += int64(len(got))
	}
	b.StopTimer()
	b.ReportMetric(float64(processed)/b.Elapsed().Seconds(), "jobs/s")
	b.ReportMetric(float64(trips)/float64(processed), "roundtrips/job")
}
