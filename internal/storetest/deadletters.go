package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// maintainer is the store's dead-letter maintenance; every store must offer it.
func maintainer(t *testing.T, s audit.EventStore) audit.DeadLetterMaintainer {
	t.Helper()
	m, ok := s.(audit.DeadLetterMaintainer)
	if !ok {
		t.Fatalf("%T does not implement audit.DeadLetterMaintainer", s)
	}
	return m
}

// storeNumbered stores n dead letters dl:<first>…dl:<first+n-1>, one batch
// each so that their ids follow their numbers, each payload size bytes long.
func storeNumbered(t *testing.T, s audit.EventStore, first, n, size int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		key := fmt.Sprintf("dl:%02d", i)
		payload := []byte(strings.Repeat("x", size))
		store(t, s, audit.Batch{DeadLetters: []audit.DeadLetter{{
			IdempotencyKey: key, Source: "storetest", Reason: audit.ReasonValidation,
			Message: "invalid event", Payload: payload, ReceivedAt: time.Now(),
		}}})
	}
}

func deadLetterKeys(t *testing.T, s audit.EventStore) []string {
	t.Helper()
	var keys []string
	for _, d := range listDeadLetters(t, s) {
		keys = append(keys, d.IdempotencyKey)
	}
	return keys
}

func numberedKeys(from, to int) []string {
	var keys []string
	for i := from; i <= to; i++ {
		keys = append(keys, fmt.Sprintf("dl:%02d", i))
	}
	return keys
}

// The quota keeps the newest dead letters: at most MaxEntries of them, whose
// payloads add up to at most MaxBytes; a zero bound is no bound.
func testDeadLetterQuota(t *testing.T, s audit.EventStore) {
	m := maintainer(t, s)
	storeNumbered(t, s, 1, 10, 100)
	store(t, s, audit.Batch{Records: generated(41, 3)}) // events are never pruned
	now := time.Now()

	for _, tc := range []struct {
		name     string
		limits   audit.DeadLetterLimits
		byQuota  int64
		wantKeys []string
	}{
		{"no bounds", audit.DeadLetterLimits{}, 0, numberedKeys(1, 10)},
		{"bounds not reached", audit.DeadLetterLimits{MaxEntries: 10, MaxBytes: 1000}, 0, numberedKeys(1, 10)},
		{"entries", audit.DeadLetterLimits{MaxEntries: 8}, 2, numberedKeys(3, 10)},
		{"bytes", audit.DeadLetterLimits{MaxBytes: 650}, 2, numberedKeys(5, 10)},
		{"the tighter bound wins", audit.DeadLetterLimits{MaxEntries: 5, MaxBytes: 350}, 3, numberedKeys(8, 10)},
		{"a newest payload over the byte bound goes too", audit.DeadLetterLimits{MaxBytes: 99}, 3, nil},
	} {
		p, err := m.PruneDeadLetters(ctxFor(t), tc.limits, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		keys := deadLetterKeys(t, s)
		if p.ByQuota != tc.byQuota || p.ByRetention != 0 || !slices.Equal(keys, tc.wantKeys) {
			t.Errorf("%s: pruned %+v, left %v; want %d by quota, left %v", tc.name, p, keys, tc.byQuota, tc.wantKeys)
		}
		want := audit.DeadLetterUsage{Entries: int64(len(tc.wantKeys)), Bytes: int64(100 * len(tc.wantKeys))}
		if p.Left != want {
			t.Errorf("%s: left %+v, want %+v", tc.name, p.Left, want)
		}
	}
	if n := len(listAll(t, s)); n != 3 {
		t.Errorf("%d events left after pruning dead letters, want 3", n)
	}
}

// Retention counts from a dead letter's last refusal: one refused again
// stays, however old its first refusal.
func testDeadLetterRetention(t *testing.T, s audit.EventStore) {
	m := maintainer(t, s)
	storeNumbered(t, s, 1, 4, 10)
	// Stores stamp refusals with their own clock; the gap keeps the cut-off
	// clear of both sides.
	time.Sleep(200 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(200 * time.Millisecond)
	storeNumbered(t, s, 5, 2, 10)
	storeNumbered(t, s, 2, 1, 10) // dl:02 is refused again

	const retention = 24 * time.Hour
	p, err := m.PruneDeadLetters(ctxFor(t), audit.DeadLetterLimits{Retention: retention}, cutoff.Add(retention))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dl:02", "dl:05", "dl:06"}
	if keys := deadLetterKeys(t, s); p.ByRetention != 3 || p.ByQuota != 0 || !slices.Equal(keys, want) {
		t.Errorf("pruned %+v, left %v; want 3 by retention, left %v", p, keys, want)
	}
	if p.Left != (audit.DeadLetterUsage{Entries: 3, Bytes: 30}) {
		t.Errorf("left %+v, want 3 entries of 30 bytes", p.Left)
	}
	// A second pass finds nothing more to delete.
	p, err = m.PruneDeadLetters(ctxFor(t), audit.DeadLetterLimits{Retention: retention, MaxEntries: 3}, cutoff.Add(retention))
	if err != nil || p.ByRetention != 0 || p.ByQuota != 0 {
		t.Errorf("second pass: %+v, %v; want nothing pruned", p, err)
	}
}

// Usage counts the dead letters and their payload bytes, an empty one as 0.
func testDeadLetterUsage(t *testing.T, s audit.EventStore) {
	m := maintainer(t, s)
	u, err := m.DeadLetterUsage(ctxFor(t))
	if err != nil || u != (audit.DeadLetterUsage{}) {
		t.Fatalf("empty store: %+v, %v", u, err)
	}
	dls := deadLetters()
	dls = append(dls, audit.DeadLetter{IdempotencyKey: "dl:empty", Source: "http", Reason: audit.ReasonValidation,
		Message: "request body is empty", Payload: nil, ReceivedAt: time.Now()})
	store(t, s, audit.Batch{DeadLetters: dls})
	var bytes int64
	for _, d := range dls {
		bytes += int64(len(d.Payload))
	}
	u, err = m.DeadLetterUsage(ctxFor(t))
	if err != nil || u != (audit.DeadLetterUsage{Entries: int64(len(dls)), Bytes: bytes}) {
		t.Errorf("usage %+v, %v; want %d entries of %d bytes", u, err, len(dls), bytes)
	}
}

// testDeadLetterGetAndDelete: one dead letter is read by id and deleted
// (after a redrive); the others stay.
func testDeadLetterGetAndDelete(t *testing.T, s audit.EventStore) {
	storeNumbered(t, s, 0, 3, 10)
	all := listDeadLetters(t, s)
	got, err := audit.GetDeadLetter(ctxFor(t), s, all[1].ID)
	if err != nil || got.IdempotencyKey != "dl:01" {
		t.Fatalf("get dead letter %d: %+v, %v", all[1].ID, got, err)
	}
	if err := maintainer(t, s).DeleteDeadLetter(ctxFor(t), all[1].ID); err != nil {
		t.Fatal(err)
	}
	if keys := deadLetterKeys(t, s); !slices.Equal(keys, []string{"dl:00", "dl:02"}) {
		t.Errorf("after deleting dl:01: %v", keys)
	}
	_, err = audit.GetDeadLetter(ctxFor(t), s, all[1].ID)
	wantCode(t, "get a deleted dead letter", err, audit.CodeNotFound)
	wantCode(t, "delete it again", maintainer(t, s).DeleteDeadLetter(ctxFor(t), all[1].ID), audit.CodeNotFound)
	_, err = audit.GetDeadLetter(ctxFor(t), s, 0)
	wantCode(t, "get id 0", err, audit.CodeNotFound)
}
