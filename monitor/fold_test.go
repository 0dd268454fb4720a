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
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
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
	cfg := DefaultConfig()
	cfg.FailedAuth.Threshold = 1
	m, err := New(cfg, Options{State: NewMemoryState(), Alerts: store, Now: clock.Now, FoldInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const keys = maxRaiseBatch + 44
	batch := func(round int, at time.Time) {
		r := &pipeline.BatchReport{}
		for i := range keys {
			e := failedLogin(fmt.Sprintf("r%d:u-%d", round, i), fmt.Sprintf("u-%d", i), at)
			r.Accepted = append(r.Accepted, e.accepted())
		}
		m.ObserveBatch(context.Background(), r)
	}
	batch(0, t0)                  // written at once
	batch(1, t0.Add(time.Second)) // folded
	clock.Set(t0.Add(10 * time.Second))
	m.raiser.flush(context.Background(), false)
	want := []int{maxRaiseBatch, keys - maxRaiseBatch, maxRaiseBatch, keys - maxRaiseBatch}
	if !slices.Equal(store.batches, want) {
		t.Fatalf("RaiseAlerts calls of %v conditions, want %v", store.batches, want)
	}
	for i := range keys {
		key := fmt.Sprintf("FAILED_AUTH:principal:u-%d", i)
		if n := store.occurrences(key); n != 2 {
			t.Fatalf("%s: %d occurrences, want 2", key, n)
		}
	}
}

// A repeat is folded as a detection and its condition built when it is
// written: the write carries the latest observation's evidence (not an
// earlier one's, nor one that arrived later with an older event time) and the
// occurrences of every repeat.
func TestFoldedRepeatKeepsTheLatestEvidence(t *testing.T) {
	store := newFakeAlerts()
	clock := testenv.NewClock(t0)
	cfg := DefaultConfig()
	cfg.FailedAuth.Threshold = 2
	m, err := New(cfg, Options{State: NewMemoryState(), Alerts: store, Now: clock.Now, FoldInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	feed := func(key string, at time.Time) {
		e := failedLogin(key, "u-1", at).accepted()
		e.Event.CorrelationID = "corr-" + key
		m.ObserveBatch(context.Background(), &pipeline.BatchReport{Accepted: []pipeline.AcceptedEvent{e}})
	}
	feed("a", t0)
	feed("b", t0.Add(4*time.Second)) // crosses: written at once
	feed("c", t0.Add(6*time.Second)) // folded
	feed("d", t0.Add(8*time.Second)) // folded, the latest
	feed("e", t0.Add(5*time.Second)) // folded, arrived last but observed earlier
	if n := len(store.conditions()); n != 1 {
		t.Fatalf("%d writes before the interval passed, want 1", n)
	}
	clock.Set(t0.Add(10 * time.Second))
	m.raiser.flush(context.Background(), false)
	conds := store.conditions()
	if len(conds) != 2 {
		t.Fatalf("%d writes, want 2", len(conds))
	}
	c := conds[1]
	e := metadata(t, c)
	if c.Occurrences != 3 || !c.ObservedAt.Equal(t0.Add(8*time.Second)) || c.CorrelationID != "corr-d" {
		t.Fatalf("folded write: occurrences %d, observed %s, correlation %q; want 3, the latest event (t0+8s), corr-d",
			c.Occurrences, c.ObservedAt, c.CorrelationID)
	}
	if e.Count != 4 || !slices.Equal(e.EventKeys, []string{"a", "b", "c", "d"}) || c.Source != SourcePatternDetector {
		t.Fatalf("folded write's evidence %+v from %s; want the window a–d as d saw it", e, c.Source)
	}
	if store.occurrences("FAILED_AUTH:principal:u-1") != 4 {
		t.Fatalf("%d occurrences in the store, want 4", store.occurrences("FAILED_AUTH:principal:u-1"))
	}
}
