package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// TreeStore is what the tree suite needs: writing events and keeping their tree.
type TreeStore interface {
	audit.EventStore
	audit.TreeStore
}

// RunTree runs the TreeStore conformance tests. open must return a fresh,
// empty store for each call.
func RunTree(t *testing.T, open func(t *testing.T) TreeStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s TreeStore)
	}{
		{"PendingAppendAndRead", testTreeAppend},
		{"HashesAcrossAppends", testTreeHashesAcrossAppends},
		{"FloorOnlyRises", testTreeFloor},
		{"AppendConflicts", testTreeAppendConflicts},
		{"LeafEventsNameMissingRows", testTreeLeafEvents},
		{"Checkpoints", testTreeCheckpoints},
		{"OneIntegratorAtATime", testTreeLock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// appendAll makes every pending row a leaf, with the stored hashes
// golang.org/x/mod/sumdb/tlog computes for them.
func appendAll(t *testing.T, s TreeStore) []audit.LeafRow {
	t.Helper()
	return appendSome(t, s, 100000)
}

// appendSome appends up to limit pending rows.
func appendSome(t *testing.T, s TreeStore, limit int) []audit.LeafRow {
	t.Helper()
	ctx := ctxFor(t)
	size, err := s.TreeSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.PendingRows(ctx, 0, math.MaxInt64, limit)
	if err != nil {
		t.Fatal(err)
	}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := s.ReadHashes(ctx, idx)
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, err
	})
	var fresh [][32]byte
	base := tlog.StoredHashCount(size)
	overlay := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= base {
				out[i] = fresh[x-base]
				continue
			}
			hs, err := r.ReadHashes([]int64{x})
			if err != nil {
				return nil, err
			}
			out[i] = hs[0]
		}
		return out, nil
	})
	for i, row := range rows {
		hs, err := tlog.StoredHashes(size+int64(i), row.RecordHash[:], overlay)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			fresh = append(fresh, h)
		}
	}
	if err := s.AppendLeaves(ctx, size, rows, fresh); err != nil {
		t.Fatalf("AppendLeaves(%d, %d rows): %v", size, len(rows), err)
	}
	return rows
}

func testTreeAppend(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	recs := generated(41, 25)
	store(t, s, audit.Batch{Records: recs[:10]})
	first := appendAll(t, s)
	if len(first) != 10 {
		t.Fatalf("%d pending rows, want 10", len(first))
	}
	store(t, s, audit.Batch{Records: recs[10:]})
	pending, err := s.PendingRows(ctx, 0, math.MaxInt64, 100)
	if err != nil || len(pending) != 15 {
		t.Fatalf("PendingRows after 10 integrated: %d rows, %v; want 15", len(pending), err)
	}
	if p, _ := s.PendingRows(ctx, pending[4].Seq, math.MaxInt64, 100); len(p) != 10 {
		t.Fatalf("PendingRows after Seq %d: %d rows, want 10", pending[4].Seq, len(p))
	}
	if p, _ := s.PendingRows(ctx, pending[4].Seq, pending[7].Seq, 100); len(p) != 3 || p[2].Seq != pending[7].Seq {
		t.Fatalf("PendingRows in (%d, %d]: %d rows, want 3 ending at the bound", pending[4].Seq, pending[7].Seq, len(p))
	}
	appendAll(t, s)
	if n, err := s.TreeSize(ctx); n != 25 || err != nil {
		t.Fatalf("TreeSize = %d, %v; want 25", n, err)
	}
	// The stored tree's root is the one of the record hashes in Seq order.
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := s.ReadHashes(ctx, idx)
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, err
	})
	root, err := tlog.TreeHash(25, r)
	if err != nil {
		t.Fatal(err)
	}
	events := listAll(t, s)
	if want := rootOf(t, events); root != want {
		t.Fatalf("stored root %s, want %s", root, want)
	}
	for i, e := range events {
		l, err := s.LeafOf(ctx, e.Seq)
		if err != nil || l.Index != int64(i) || fmt.Sprintf("%x", l.RecordHash) != e.RecordHash || !l.Time.Equal(e.Time) {
			t.Fatalf("LeafOf(%d) = %+v, %v; want leaf %d of record hash %s", e.Seq, l, err, i, e.RecordHash)
		}
	}
	if _, err := s.LeafOf(ctx, events[24].Seq+1000); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("LeafOf(unknown) = %v, want not found", err)
	}
	if _, err := s.ReadHashes(ctx, []int64{tlog.StoredHashCount(25)}); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("ReadHashes(past the end) = %v, want not found", err)
	}
	if p, _ := s.PendingRows(ctx, 0, math.MaxInt64, 100); len(p) != 0 {
		t.Fatalf("%d rows pending after all were integrated", len(p))
	}
}

// testTreeHashesAcrossAppends appends leaves in runs of uneven sizes, so
// that a store which packs hashes (several per row) grows partly filled rows
// and starts new ones at every level, and checks after each append that
// every stored hash is the one tlog computes.
func testTreeHashesAcrossAppends(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	store(t, s, audit.Batch{Records: generated(43, 300)})
	var want []tlog.Hash // every stored hash of the tree so far, in order
	memory := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = want[x]
		}
		return out, nil
	})
	size := int64(0)
	for _, run := range []int{1, 30, 1, 2, 33, 64, 100, 69} {
		for _, row := range appendSome(t, s, run) {
			hs, err := tlog.StoredHashes(size, row.RecordHash[:], memory)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, hs...)
			size++
		}
		all := make([]int64, len(want))
		for i := range all {
			all[i] = int64(i)
		}
		got, err := s.ReadHashes(ctx, all)
		if err != nil {
			t.Fatalf("tree of %d leaves: ReadHashes: %v", size, err)
		}
		for i := range want {
			if tlog.Hash(got[i]) != want[i] {
				t.Fatalf("tree of %d leaves: stored hash %d is %x, want %x", size, i, got[i], want[i])
			}
		}
		// Out of order and repeated, as a proof reads them.
		some := []int64{all[len(all)-1], 0, all[len(all)/2], 0}
		if got, err := s.ReadHashes(ctx, some); err != nil || tlog.Hash(got[0]) != want[some[0]] || tlog.Hash(got[3]) != want[0] {
			t.Fatalf("tree of %d leaves: ReadHashes(%v) = %x, %v", size, some, got, err)
		}
		if _, err := s.ReadHashes(ctx, []int64{int64(len(want))}); audit.ErrorCode(err) != audit.CodeNotFound {
			t.Fatalf("tree of %d leaves: ReadHashes(past the end) = %v, want not found", size, err)
		}
	}
	if size != 300 {
		t.Fatalf("appended %d leaves, want 300", size)
	}
}

func testTreeFloor(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	if f, err := s.Floor(ctx); f != 0 || err != nil {
		t.Fatalf("Floor of a new store = %d, %v; want 0", f, err)
	}
	for _, save := range []int64{40, 12, 41} {
		if err := s.SaveFloor(ctx, save); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := s.Floor(ctx); f != 41 || err != nil {
		t.Fatalf("Floor after saving 40, 12, 41 = %d, %v; want 41", f, err)
	}
}

// rootOf computes the RFC 6962 root of events' record hashes in memory.
func rootOf(t *testing.T, events []audit.StoredEvent) tlog.Hash {
	t.Helper()
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, e := range events {
		data, err := hex.DecodeString(e.RecordHash)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(i), data, r)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	root, err := tlog.TreeHash(int64(len(events)), r)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func testTreeAppendConflicts(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	store(t, s, audit.Batch{Records: generated(42, 3)})
	rows := appendAll(t, s)
	// A stale size: another integrator appended in between.
	if err := s.AppendLeaves(ctx, 0, rows[:1], [][32]byte{{1}}); audit.ErrorCode(err) != audit.CodeConflict {
		t.Fatalf("AppendLeaves with a stale size = %v, want conflict", err)
	}
	// A row that is a leaf already, at the right size.
	if err := s.AppendLeaves(ctx, 3, rows[:1], [][32]byte{{1}}); audit.ErrorCode(err) != audit.CodeConflict {
		t.Fatalf("AppendLeaves of a row twice = %v, want conflict", err)
	}
	if n, _ := s.TreeSize(ctx); n != 3 {
		t.Fatalf("TreeSize after refused appends = %d, want 3", n)
	}
}

func testTreeLeafEvents(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	store(t, s, audit.Batch{Records: generated(43, 7)})
	appendAll(t, s)
	events := listAll(t, s)
	page, err := s.LeafEvents(ctx, 2, 3)
	if err != nil || len(page) != 3 {
		t.Fatalf("LeafEvents(2, 3) = %d leaves, %v", len(page), err)
	}
	for i, le := range page {
		e := events[2+i]
		if le.Index != int64(2+i) || le.Event == nil || le.Event.Seq != e.Seq || le.Event.RecordHash != e.RecordHash ||
			string(le.Event.Details) != string(e.Details) || le.Event.ComputeRecordHash() != e.RecordHash {
			t.Fatalf("leaf %d: %+v, want the row %d as stored", 2+i, le, e.Seq)
		}
		// Every value as ListEvents reads it; the session context may be
		// left in Details undecoded.
		got, want := *le.Event, e
		got.SessionContext, want.SessionContext = nil, nil
		for _, ts := range []*time.Time{&got.Time, &got.ReceivedAt, &got.StoredAt, &want.Time, &want.ReceivedAt, &want.StoredAt} {
			*ts = ts.UTC()
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("leaf %d: row\n%+v\nListEvents:\n%+v", 2+i, got, want)
		}
	}
	if page, _ := s.LeafEvents(ctx, 7, 3); len(page) != 0 {
		t.Fatalf("LeafEvents past the end: %d leaves", len(page))
	}
}

func testTreeCheckpoints(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	if _, err := s.LatestCheckpoint(ctx); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("LatestCheckpoint of an empty store = %v, want not found", err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	for _, size := range []int64{5, 1, 12} {
		sum := sha256.Sum256([]byte{byte(size)})
		if err := s.AddCheckpoint(ctx, audit.Checkpoint{Size: size, Note: fmt.Sprintf("note %d %x\n", size, sum), CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddCheckpoint(ctx, audit.Checkpoint{Size: 5, Note: "other"}); audit.ErrorCode(err) != audit.CodeConflict {
		t.Fatalf("a second checkpoint of size 5: %v, want conflict", err)
	}
	latest, err := s.LatestCheckpoint(ctx)
	if err != nil || latest.Size != 12 || !latest.CreatedAt.Equal(at) {
		t.Fatalf("LatestCheckpoint = %+v, %v; want size 12 created at %s", latest, err, at)
	}
	if c, err := s.CheckpointAt(ctx, 5); err != nil || c.Size != 5 || c.Note[:6] != "note 5" {
		t.Fatalf("CheckpointAt(5) = %+v, %v", c, err)
	}
	if _, err := s.CheckpointAt(ctx, 6); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("CheckpointAt(6) = %v, want not found", err)
	}
	cs, err := s.Checkpoints(ctx, 1, 10)
	if err != nil || len(cs) != 2 || cs[0].Size != 5 || cs[1].Size != 12 {
		t.Fatalf("Checkpoints(after 1) = %+v, %v; want sizes 5, 12", cs, err)
	}
}

func testTreeLock(t *testing.T, s TreeStore) {
	ctx := ctxFor(t)
	unlock, err := s.LockIntegrator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockIntegrator(ctx); audit.ErrorCode(err) != audit.CodeConflict {
		t.Fatalf("a second LockIntegrator = %v, want conflict", err)
	}
	unlock()
	again, err := s.LockIntegrator(ctx)
	if err != nil {
		t.Fatalf("LockIntegrator after unlock: %v", err)
	}
	again()
}
