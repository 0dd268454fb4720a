package monitor

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
)

// countingAlerts takes every condition and keeps nothing but a count.
type countingAlerts struct {
	fakeAlerts
	n atomic.Int64
}

func (c *countingAlerts) RaiseAlert(context.Context, audit.AlertCondition) (audit.AlertRaise, error) {
	c.n.Add(1)
	return audit.AlertRaise{}, nil
}

// BenchmarkMonitorBatch measures the detectors on batches of 1000 realistic
// events (eventgen's mix: logins and failures, FHIR reads, exports, 50
// organizations, 20 000 principals), time moving on batch after batch so
// windows fill and expire as in production. Alerts go to a store that only
// counts them. With two processes on one Redis log, each batch also applies
// the other process's previous batch.
func BenchmarkMonitorBatch(b *testing.B) {
	const size, batches = 1000, 40
	// Forty distinct batches, replayed later in time: replaying one batch
	// would repeat its principals every few seconds, which no real traffic does.
	g := eventgen.New(7)
	now := time.Now()
	events := make([][]audit.Event, batches)
	base := make([][]time.Time, batches)
	for n := range events {
		events[n], base[n] = make([]audit.Event, size), make([]time.Time, size)
		for i := range events[n] {
			e, _, err := audit.ParseEvent(g.Valid(), audit.DefaultRules(), now)
			if err != nil {
				b.Fatal(err)
			}
			events[n][i], base[n][i] = e, e.Time
		}
	}
	cycle := base[batches-1][size-1].Sub(base[0][0]) + time.Millisecond

	// run feeds the batches to monitors on the states in turn (two states on
	// one log: two worker processes, each applying the other's batches too).
	run := func(b *testing.B, states ...State) {
		alerts := &countingAlerts{}
		var clockNow atomic.Int64
		ms := make([]*Monitor, len(states))
		for i, st := range states {
			m, err := New(DefaultConfig(), Options{State: st, Alerts: alerts,
				Now: func() time.Time { return time.Unix(0, clockNow.Load()) }})
			if err != nil {
				b.Fatal(err)
			}
			ms[i] = m
		}
		r := &pipeline.BatchReport{Accepted: make([]pipeline.AcceptedEvent, size)}
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; b.Loop(); n++ {
			b.StopTimer()
			k := n % batches
			shift := time.Duration(n/batches) * cycle
			for i := range r.Accepted {
				events[k][i].Time = base[k][i].Add(shift)
				r.Accepted[i] = pipeline.AcceptedEvent{Input: i, Key: fmt.Sprintf("bench:%d:%d", n, i), Event: &events[k][i], Stored: true}
			}
			clockNow.Store(base[k][size-1].Add(shift).UnixNano())
			b.StartTimer()
			ms[n%len(ms)].ObserveBatch(context.Background(), r)
		}
		b.ReportMetric(float64(alerts.n.Load())/float64(b.N), "raises/batch")
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
	b.Run("memory", func(b *testing.B) { run(b, NewMemoryState()) })
	redisStates := func(b *testing.B, n int) []State {
		prefix := testenv.RedisKeyPrefix(b) + ":"
		var states []State
		for range n {
			st, err := NewRedisState(testRedis(b), prefix)
			if err != nil {
				b.Fatal(err)
			}
			states = append(states, st)
		}
		rdb := testRedis(b)
		b.Cleanup(func() { deleteKeys(b, rdb, states[0].(*RedisState).base+"*") })
		return states
	}
	b.Run("redis", func(b *testing.B) { run(b, redisStates(b, 1)...) })
	b.Run("redis-two-processes", func(b *testing.B) { run(b, redisStates(b, 2)...) })
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
