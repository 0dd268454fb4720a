package monitor

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
)

// countingAlerts takes every condition and keeps nothing but counts: the
// store's round trips (calls) and the conditions they carried. It raises in
// batches, as both real stores do.
type countingAlerts struct {
	fakeAlerts
	calls, n atomic.Int64
}

func (c *countingAlerts) RaiseAlert(context.Context, audit.AlertCondition) (audit.AlertRaise, error) {
	c.calls.Add(1)
	c.n.Add(1)
	return audit.AlertRaise{}, nil
}

func (c *countingAlerts) RaiseAlerts(_ context.Context, cs []audit.AlertCondition) ([]audit.AlertRaise, error) {
	c.calls.Add(1)
	c.n.Add(int64(len(cs)))
	return make([]audit.AlertRaise, len(cs)), nil
}

// redisCounter counts the commands a client sends and the bytes it writes
// and reads on its connections.
type redisCounter struct {
	cmds, bytes atomic.Int64
}

type countingConn struct {
	net.Conn
	c *redisCounter
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.bytes.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.c.bytes.Add(int64(n))
	return n, err
}

func (rc *redisCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (rc *redisCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		rc.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (rc *redisCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		rc.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countedRedis is a test client whose commands and bytes rc counts.
func countedRedis(tb testing.TB, rc *redisCounter) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	var d net.Dialer
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{conn, rc}, nil
	}
	rdb := redis.NewClient(opts)
	rdb.AddHook(rc)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// BenchmarkMonitorBatch measures the detectors on batches of 1000 events,
// time moving on batch after batch so windows fill and expire as in
// production. Alerts go to a store that only counts them. With two processes
// on one Redis log, each batch also applies the other process's previous
// batch.
//
// The first variants use eventgen's uniform mix (logins and failures, FHIR
// reads, exports, 50 organizations, 20 000 principals), which the detectors
// rarely count twice for one key. The prod variants use production-shaped
// traffic (eventgen's Production profile: 5 organizations of 15–40 users,
// stamped as made, here at a drain's rate of 20,000 events a second), where most events are counted and hundreds of keys are over
// their thresholds; they fold alert repeats as the worker does (a 5 s
// interval) and report the alert store's round trips per batch, and Redis
// commands and bytes per event.
func BenchmarkMonitorBatch(b *testing.B) {
	const size, batches = 1000, 40
	// Forty distinct batches, replayed later in time: replaying one batch
	// would repeat its principals every few seconds, which no real traffic does.
	g := eventgen.New(7)
	now := time.Now()
	uniform := make([][]audit.Event, batches)
	for n := range uniform {
		uniform[n] = make([]audit.Event, size)
		for i := range uniform[n] {
			e, _, err := audit.ParseEvent(g.Valid(), audit.DefaultRules(), now)
			if err != nil {
				b.Fatal(err)
			}
			uniform[n][i] = e
		}
	}
	// By day (12:00 UTC): off-hours markers are the night's concern.
	noon := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC)
	// Stamped as they are made, at a drain's rate: 20,000 events a second.
	pg := eventgen.NewProfile(eventgen.Production, 7)
	clock := noon
	pg.Now = func() time.Time { return clock }
	prod := make([][]audit.Event, batches)
	for n := range prod {
		prod[n] = make([]audit.Event, size)
		for i := range prod[n] {
			clock = clock.Add(50 * time.Microsecond)
			e, _, err := audit.ParseEvent(pg.Valid(), audit.DefaultRules(), clock)
			if err != nil {
				b.Fatal(err)
			}
			prod[n][i] = e
		}
	}

	// run feeds the batches to monitors on the states in turn (two states on
	// one log: two worker processes, each applying the other's batches too).
	run := func(b *testing.B, events [][]audit.Event, fold time.Duration, rc *redisCounter, states ...State) {
		base := make([][]time.Time, batches)
		for n := range events {
			base[n] = make([]time.Time, size)
			for i := range events[n] {
				base[n][i] = events[n][i].Time
			}
		}
		cycle := base[batches-1][size-1].Sub(base[0][0]) + time.Millisecond
		alerts := &countingAlerts{}
		var clockNow atomic.Int64
		ms := make([]*Monitor, len(states))
		for i, st := range states {
			m, err := New(DefaultConfig(), Options{State: st, Alerts: alerts, FoldInterval: fold,
				Now: func() time.Time { return time.Unix(0, clockNow.Load()) }})
			if err != nil {
				b.Fatal(err)
			}
			ms[i] = m
		}
		r := &pipeline.BatchReport{Accepted: make([]pipeline.AcceptedEvent, size)}
		var cmds0, bytes0 int64
		if rc != nil {
			cmds0, bytes0 = rc.cmds.Load(), rc.bytes.Load()
		}
		b.ReportAllocs()
		b.ResetTimer()
		n, cpu := 0, time.Duration(0)
		for ; b.Loop(); n++ {
			b.StopTimer()
			k := n % batches
			shift := time.Duration(n/batches) * cycle
			for i := range r.Accepted {
				events[k][i].Time = base[k][i].Add(shift)
				r.Accepted[i] = pipeline.AcceptedEvent{Input: i, Key: fmt.Sprintf("bench:%d:%d", n, i), Event: &events[k][i], Stored: true}
			}
			clockNow.Store(base[k][size-1].Add(shift).UnixNano())
			cpu0 := processCPU(b)
			b.StartTimer()
			m := ms[n%len(ms)]
			m.ObserveBatch(context.Background(), r)
			// What Run does on its ticker: write the folded repeats that are due.
			m.raiser.flush(context.Background(), false)
			b.StopTimer()
			cpu += processCPU(b) - cpu0
			b.StartTimer()
		}
		b.StopTimer()
		for k := range events {
			for i := range events[k] {
				events[k][i].Time = base[k][i]
			}
		}
		// The host may be shared: the process's CPU time (GC included) says
		// more than the wall time of ns/op.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
		b.ReportMetric(float64(alerts.n.Load())/float64(n), "raises/batch")
		b.ReportMetric(float64(alerts.calls.Load())/float64(n), "storecalls/batch")
		if rc != nil {
			b.ReportMetric(float64(rc.cmds.Load()-cmds0)/float64(n*size), "rediscmds/event")
			b.ReportMetric(float64(rc.bytes.Load()-bytes0)/float64(n*size), "redisB/event")
		}
	}
	// The validation stage alone on the same events, for scale on this machine.
	b.Run("reference-parse", func(b *testing.B) {
		payloads := make([][]byte, size)
		for i := range payloads {
			payloads[i] = g.Valid()
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range payloads {
				if _, _, err := audit.ParseEvent(p, audit.DefaultRules(), now); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	redisStates := func(b *testing.B, rc *redisCounter, n int) []State {
		prefix := testenv.RedisKeyPrefix(b) + ":"
		var states []State
		for range n {
			st, err := NewRedisState(countedRedis(b, rc), prefix)
			if err != nil {
				b.Fatal(err)
			}
			states = append(states, st)
		}
		rdb := testRedis(b)
		b.Cleanup(func() { deleteKeys(b, rdb, states[0].(*RedisState).base+"*") })
		return states
	}
	b.Run("memory", func(b *testing.B) { run(b, uniform, 0, nil, NewMemoryState()) })
	b.Run("redis", func(b *testing.B) {
		rc := &redisCounter{}
		run(b, uniform, 0, rc, redisStates(b, rc, 1)...)
	})
	b.Run("redis-two-processes", func(b *testing.B) {
		rc := &redisCounter{}
		run(b, uniform, 0, rc, redisStates(b, rc, 2)...)
	})
	const fold = 5 * time.Second // as the worker folds
	b.Run("prod/memory", func(b *testing.B) { run(b, prod, fold, nil, NewMemoryState()) })
	b.Run("prod/redis", func(b *testing.B) {
		rc := &redisCounter{}
		run(b, prod, fold, rc, redisStates(b, rc, 1)...)
	})
	b.Run("prod/redis-two-processes", func(b *testing.B) {
		rc := &redisCounter{}
		run(b, prod, fold, rc, redisStates(b, rc, 2)...)
	})
}

// BenchmarkRedisCatchUp measures a process that starts on a log of 300,000
// ops (400 batches of 750 over 20,000 principals): its first batch reads and
// applies all of them.
func BenchmarkRedisCatchUp(b *testing.B) {
	const batches, size = 400, 750
	writer, _ := sharedRedis(b)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	velocity := func(key, member string, at int64) op {
		return op{key: key, member: member, at: at, window: 60_000, threshold: 50, expireAt: at + 420_000, keep: 420_000}
	}
	for n := range batches {
		ops := make([]op, 0, size)
		for i := range size {
			e := n*size + i
			ops = append(ops, velocity(fmt.Sprintf("DATA_VELOCITY:principal:u-%05d", e%20_000), fmt.Sprintf("audit-events:%d:%d", e, now), now-int64(i)))
		}
		if _, _, err := writer.apply(ctx, now, 100_000, ops); err != nil {
			b.Fatal(err)
		}
	}
	prefix := strings.TrimSuffix(strings.TrimPrefix(writer.base, "{"), "monitor}:")
	b.ResetTimer()
	for b.Loop() {
		fresh, err := NewRedisState(testRedis(b), prefix)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := fresh.apply(ctx, now, 100_000, []op{velocity("DATA_VELOCITY:principal:new", "m", now)}); err != nil {
			b.Fatal(err)
		}
		// (and the single ops of the processes started before it)
		if r, _ := fresh.LogStats(); r < batches*size {
			b.Fatalf("replayed %d ops, want %d at least", r, batches*size)
		}
	}
	b.ReportMetric(float64(batches*size)*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
