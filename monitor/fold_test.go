package monitor

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// With FoldInterval, an alert opens with the batch that crosses the threshold,
// repeats within the interval are written once when it has passed, and Run
// writes what is left when it stops: the store sees every occurrence, in fewer
// writes.
func TestFoldedRepeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{alerts: newFakeAlerts(), clock: testenv.NewClock(t0), reg: prometheus.NewRegistry(), notes: &fakeNotifier{}}
		cfg := DefaultConfig()
		cfg.FailedAuth = Rule{Threshold: 2, Window: 5 * time.Minute}
		const fold = 10 * time.Second
		// Events and folding go by the harness's clock; Run ticks on the bubble's.
		m, err := New(cfg, Options{State: NewMemoryState(), Alerts: h.alerts, Notifier: h.notes, Registerer: h.reg,
			Now: h.clock.Now, FoldInterval: fold})
		if err != nil {
			t.Fatal(err)
		}
		h.Monitor = m
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); h.Monitor.Run(ctx) }()
		const key = "FAILED_AUTH:principal:u-1"
		at := t0
		next := func() ev {
			at = at.Add(time.Second)
			h.clock.Set(at)
			return failedLogin(at.Format(time.RFC3339Nano), "u-1", at)
		}

		h.feed(next(), next()) // crosses the threshold: written at once
		if n := len(h.alerts.conditions()); n != 1 || h.alerts.occurrences(key) != 1 {
			t.Fatalf("after the crossing: %d writes, %d occurrences; want 1, 1", n, h.alerts.occurrences(key))
		}
		for range 3 { // three more batches within the interval: folded
			h.feed(next())
		}
		if n := len(h.alerts.conditions()); n != 1 {
			t.Fatalf("repeats within the interval were written (%d writes)", n)
		}
		if got := testutil.ToFloat64(h.Monitor.m.folded); got != 3 {
			t.Errorf("folded metric = %v, want 3", got)
		}
		h.clock.Set(at.Add(fold))
		time.Sleep(fold / 4) // Run's next tick writes what fell due
		synctest.Wait()
		conds := h.alerts.conditions()
		if len(conds) != 2 || conds[1].Occurrences != 3 || h.alerts.occurrences(key) != 4 {
			t.Fatalf("after the interval: %d writes (last %+v), %d occurrences; want 2 writes, the last for 3, 4 in all",
				len(conds), conds[len(conds)-1], h.alerts.occurrences(key))
		}
		if !conds[1].ObservedAt.Equal(at) {
			t.Errorf("folded write observed at %s, want the latest event's time %s", conds[1].ObservedAt, at)
		}

		h.feed(next()) // written by the tick moments ago: folded again
		cancel()
		<-done
		if got := h.alerts.occurrences(key); got != 5 {
			t.Errorf("after Run stopped: %d occurrences, want 5 (nothing lost)", got)
		}
		if n := len(h.notes.got); n != 1 {
			t.Errorf("notified %d times, want once (the alert opened once)", n)
		}
	})
}

// The folded repeats that fall due together (at night, one per principal)
// reach a batch store in transactions of at most maxRaiseBatch conditions,
// not one each.
func TestDueRepeatsWrittenTogether(t *testing.T) {
	store := &batchAlerts{fakeAlerts: newFakeAlerts()}
	clock := testenv.NewClock(t0)
	m, err := New(DefaultConfig(), Options{State: NewMemoryState(), Alerts: store, Now: clock.Now, FoldInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const keys = maxRaiseBatch + 44
	var first, repeats []audit.AlertCondition
	for i := range keys {
		c := audit.AlertCondition{DedupKey: fmt.Sprintf("FAILED_AUTH:principal:u-%d", i), Type: audit.AlertSecurity,
			Severity: audit.SeverityHigh, Title: "t", DedupWindow: time.Hour, ObservedAt: t0}
		first = append(first, c)
		c.ObservedAt = t0.Add(time.Second)
		repeats = append(repeats, c)
	}
	m.raiser.raiseAll(context.Background(), first)   // written at once
	m.raiser.raiseAll(context.Background(), repeats) // folded
	clock.Set(t0.Add(10 * time.Second))
	m.raiser.flush(context.Background(), false)
	want := []int{maxRaiseBatch, keys - maxRaiseBatch, maxRaiseBatch, keys - maxRaiseBatch}
	if !slices.Equal(store.batches, want) {
		t.Fatalf("RaiseAlerts calls of %v conditions, want %v", store.batches, want)
	}
	for _, c := range first {
		if n := store.occurrences(c.DedupKey); n != 2 {
			t.Fatalf("%s: %d occurrences, want 2", c.DedupKey, n)
		}
	}
}
