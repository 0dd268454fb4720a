package bullmq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
// Node producers set it), refilling the queue outside the timer. inflight=3
// keeps three batches active at once, as the worker does with concurrency 3:
// each step fetches a batch and completes the oldest. batch=1 is the
// one-job-per-call baseline.
func BenchmarkFetchCompleteBatch(b *testing.B) {
	for _, c := range []struct{ batch, inflight int }{{1000, 3}, {1000, 1}, {100, 1}, {1, 1}} {
		b.Run(fmt.Sprintf("batch=%d/inflight=%d", c.batch, c.inflight), func(b *testing.B) {
			benchFetchComplete(b, c.batch, c.inflight)
		})
	}
}

func benchFetchComplete(b *testing.B, batch, inflight int) {
	e := newEnv(b)
	ctx := context.Background()
	q := e.realQueue("bench")
	// Locks outlive a run under valgrind, where a batch takes seconds and
	// nothing renews them.
	c := e.consumer(q, ConsumerOptions{WorkerName: "bench", LockDuration: 10 * time.Minute})
	// An event of the size the producers send (~870 bytes): a job hash holding
	// a value this long is a real hash table in Redis, not a listpack.
	data := []byte(`{"id":"evt","actor":"alice","action":"login","ts":"2026-01-01T00:00:00Z","pad":"` +
		strings.Repeat("x", 800) + `"}`)
	// Refilled 20 batches at a time, so that runs of a few iterations under
	// valgrind (callgrind counts Redis's instructions) refill exactly once.
	jobs := make([]NewJob, max(20*batch, 1000))
	for i := range jobs {
		jobs[i] = NewJob{Name: "bench", Data: data,
			Opts: JobOptions{Attempts: 1, RemoveOnComplete: KeepLast(100), RemoveOnFail: KeepAll()}}
	}
	values := make([][]byte, batch)
	for i := range values {
		values[i] = []byte(`{"stored":true}`)
	}
	rt := &roundTrips{}
	e.rdb.AddHook(rt)

	var processed, trips, refillUsec int64
	queued := 0
	fetch := func() []*Job {
		if queued < batch {
			b.StopTimer()
			tripsBefore, before := rt.n.Load(), scriptUsec(b, e.rdb)
			if _, err := q.AddBulk(ctx, jobs); err != nil {
				b.Fatal(err)
			}
			refillUsec += scriptUsec(b, e.rdb) - before
			trips -= rt.n.Load() - tripsBefore // the refill's own round trips
			queued += len(jobs)
			b.StartTimer()
		}
		got, err := c.Fetch(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != batch {
			b.Fatalf("fetched %d jobs, want %d", len(got), batch)
		}
		queued -= len(got)
		return got
	}
	var active [][]*Job
	for range inflight - 1 {
		active = append(active, fetch())
	}
	refillUsec, trips = 0, 0 // the timed loop's only
	scriptBefore := scriptUsec(b, e.rdb)
	b.ResetTimer()
	for b.Loop() {
		before := rt.n.Load()
		active = append(active, fetch())
		errs, err := c.Complete(ctx, active[0], values)
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		trips += rt.n.Load() - before
		processed += int64(len(active[0]))
		active = active[1:]
	}
	b.StopTimer()
	// Redis is single-threaded and shared by every worker: its time per job,
	// not the client's, bounds a deployment's throughput.
	b.ReportMetric(float64(scriptUsec(b, e.rdb)-scriptBefore-refillUsec)/float64(processed), "redis-µs/job")
	b.ReportMetric(float64(processed)/b.Elapsed().Seconds(), "jobs/s")
	b.ReportMetric(float64(trips)/float64(processed), "roundtrips/job")
}

// scriptUsec is the server time Redis has spent in scripts so far (INFO
// commandstats: EVAL and EVALSHA, the commands they run included).
func scriptUsec(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for line := range strings.Lines(info) {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_eval" && name != "cmdstat_evalsha") {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(field, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}
