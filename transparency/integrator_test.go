package transparency_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/transparency"
)

func decode64(t *testing.T, hs []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(hs))
	for i, h := range hs {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// TestProofsAgreeWithAnIndependentImplementation integrates rows in several
// batches and checkpoints, then checks every row's inclusion proof and the
// consistency proofs between checkpoints with transparency-dev/merkle.
func TestProofsAgreeWithAnIndependentImplementation(t *testing.T) {
	bothStores(t, func(t *testing.T, e env) {
		key := newKey(t, testOrigin)
		in, published := newIntegrator(t, e, key)
		var sizes []int64
		for i, n := range []int{1, 6, 13, 2} {
			storeRecords(t, e, uint64(100+i), n)
			integrateAll(t, in)
			c, err := e.store.LatestCheckpoint(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, c.Size)
		}
		if want := []int64{1, 7, 20, 22}; !equal(sizes, want) {
			t.Fatalf("checkpoint sizes %v, want %v", sizes, want)
		}
		hasher := rfc6962.DefaultHasher
		for _, ev := range allEvents(t, e.store) {
			for _, size := range []int64{0, 20} {
				p, err := transparency.ProveInclusion(t.Context(), e.store, ev.Seq, size)
				if size == 20 && audit.ErrorCode(err) == audit.CodeInvalid {
					continue // a leaf after the checkpoint of 20
				}
				if err != nil {
					t.Fatalf("prove %d in %d: %v", ev.Seq, size, err)
				}
				tree, err := transparency.Open(p.Checkpoint, key.Verifier)
				if err != nil {
					t.Fatal(err)
				}
				leaf, _ := hex.DecodeString(p.Leaf)
				if p.Leaf != ev.RecordHash || tree.Size != p.Size {
					t.Fatalf("proof of %d: leaf %s size %d, want %s, %d", ev.Seq, p.Leaf, p.Size, ev.RecordHash, tree.Size)
				}
				if err := proof.VerifyInclusion(hasher, uint64(p.Index), uint64(p.Size), hasher.HashLeaf(leaf), decode64(t, p.Hashes), tree.Root[:]); err != nil {
					t.Fatalf("transparency-dev/merkle refuses the proof of row %d (leaf %d of %d): %v", ev.Seq, p.Index, p.Size, err)
				}
				// A proof of another leaf's hash must fail.
				other := hasher.HashLeaf([]byte("not the record hash"))
				if proof.VerifyInclusion(hasher, uint64(p.Index), uint64(p.Size), other, decode64(t, p.Hashes), tree.Root[:]) == nil {
					t.Fatal("transparency-dev/merkle accepts a proof for the wrong leaf")
				}
				if !strings.HasPrefix(p.Proof, "c2sp.org/tlog-proof@v1\nindex ") || !strings.HasSuffix(p.Proof, "\n\n"+p.Checkpoint) {
					t.Fatalf("tlog-proof text:\n%s", p.Proof)
				}
			}
		}
		roots := map[int64][]byte{}
		for _, size := range sizes {
			c, err := e.store.CheckpointAt(t.Context(), size)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := transparency.Open(c.Note, key.Verifier)
			if err != nil {
				t.Fatal(err)
			}
			roots[size] = tree.Root[:]
		}
		for i, from := range sizes {
			for _, to := range sizes[i:] {
				p, err := transparency.ProveConsistency(t.Context(), e.store, from, to)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyConsistency(hasher, uint64(from), uint64(to), decode64(t, p.Hashes), roots[from], roots[to]); err != nil {
					t.Fatalf("transparency-dev/merkle refuses consistency %d -> %d: %v", from, to, err)
				}
			}
		}
		if _, err := transparency.ProveConsistency(t.Context(), e.store, 0, 0); audit.ErrorCode(err) != audit.CodeInvalid {
			t.Fatalf("consistency from 0: %v, want invalid", err)
		}
		notes, err := transparency.ReadNotes(published)
		if err != nil || len(notes) != 4 {
			t.Fatalf("published file holds %d notes, %v; want 4", len(notes), err)
		}
		rep, err := transparency.Verify(t.Context(), e.store, transparency.VerifyOptions{Verifier: key.Verifier, Published: notes,
			HMACKey: []byte("transparency-test"), Batch: 5})
		if err != nil || !rep.OK || rep.Leaves != 22 || rep.Checkpoints != 4 {
			t.Fatalf("Verify of an untouched store: %+v, %v", rep, err)
		}
	})
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCrashBetweenAppendAndSign: leaves appended by an integrator that dies
// before signing are signed by the next one, none lost, none doubled.
func TestCrashBetweenAppendAndSign(t *testing.T) {
	bothStores(t, func(t *testing.T, e env) {
		key := newKey(t, testOrigin)
		first, published := newIntegrator(t, e, key)
		storeRecords(t, e, 7, 10)
		integrateAll(t, first)
		storeRecords(t, e, 8, 9)
		if n, err := first.Integrate(t.Context()); err != nil || n != 7 {
			t.Fatalf("Integrate = %d, %v; want one batch of 7", n, err)
		}
		// The first integrator dies here. The next one starts from the store.
		next := transparency.NewIntegrator(e.store, transparency.Config{Origin: testOrigin, Key: key, Batch: 7,
			Publishers: []transparency.Publisher{&transparency.FilePublisher{Path: published}}})
		integrateAll(t, next)
		c, err := e.store.LatestCheckpoint(t.Context())
		if err != nil || c.Size != 19 {
			t.Fatalf("latest checkpoint: size %d, %v; want 19", c.Size, err)
		}
		notes, _ := transparency.ReadNotes(published)
		rep, err := transparency.Verify(t.Context(), e.store, transparency.VerifyOptions{Verifier: key.Verifier, Published: notes})
		if err != nil || !rep.OK || rep.Leaves != 19 {
			t.Fatalf("Verify after the restart: %+v, %v", rep, err)
		}
	})
}

// TestOutOfOrderCommits: a transaction that drew a lower id commits after
// one that drew a higher id and after the integrator passed; its row is
// still integrated, once.
func TestOutOfOrderCommits(t *testing.T) {
	e := postgresEnv(t)
	key := newKey(t, testOrigin)
	in, _ := newIntegrator(t, e, key)
	ctx := t.Context()
	storeRecords(t, e, 1, 3)
	integrateAll(t, in)

	insert := func(tx pgx.Tx, key string) int64 {
		t.Helper()
		at := time.Now().UTC().Truncate(time.Millisecond)
		ts := at.Format("2006-01-02T15:04:05.000Z")
		r := audit.NewRecord(audit.Event{Timestamp: ts, Time: at, Action: "auth.login", Status: audit.StatusSuccess},
			key, "out-of-order", audit.IntegrityResult{HashStatus: audit.HashAbsent, SignatureStatus: audit.SignatureAbsent}, at)
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO audit_log ("timestamp", timestamp_raw, action, status, idempotency_key, source,
			hash_status, signature_status, record_hash, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			at, ts, r.Action, string(r.Status), r.IdempotencyKey, r.Source, r.HashStatus, r.SignatureStatus, r.RecordHash, r.ReceivedAt).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	begin := func() pgx.Tx {
		conn, err := pgx.Connect(ctx, e.pg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	slow, fast := begin(), begin()
	low := insert(slow, "slow")
	high := insert(fast, "fast")
	if low >= high {
		t.Fatalf("ids %d, %d: want the slow transaction's lower", low, high)
	}
	if err := fast.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The integrator passes several times, with more rows committed after
	// the fast one, while the slow transaction is still open.
	for i := range 4 {
		storeRecords(t, e, uint64(10+i), 2)
		integrateAll(t, in)
	}
	if _, err := e.store.LeafOf(ctx, low); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("the uncommitted row %d is a leaf: %v", low, err)
	}
	if _, err := e.store.LeafOf(ctx, high); err != nil {
		t.Fatalf("the committed row %d is not a leaf: %v", high, err)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	integrateAll(t, in)
	leaf, err := e.store.LeafOf(ctx, low)
	if err != nil {
		t.Fatalf("the late row %d was skipped: %v", low, err)
	}
	events := allEvents(t, e.store)
	if n, _ := e.store.TreeSize(ctx); n != int64(len(events)) || leaf.Index != n-1 {
		t.Fatalf("tree of %d leaves for %d rows; the late row is leaf %d", n, len(events), leaf.Index)
	}
	rep, err := transparency.Verify(ctx, e.store, transparency.VerifyOptions{Verifier: key.Verifier})
	if err != nil || !rep.OK {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
}

// TestRefusesACheckpointThatDoesNotExtendTheLast: with a stored hash
// rewritten, the new tree is not an extension of the last checkpoint, and
// nothing is signed.
func TestRefusesACheckpointThatDoesNotExtendTheLast(t *testing.T) {
	bothStores(t, func(t *testing.T, e env) {
		key := newKey(t, testOrigin)
		in, published := newIntegrator(t, e, key)
		storeRecords(t, e, 3, 5)
		integrateAll(t, in)
		// Leaf 4's hash: the old tree's last leaf, which every later root
		// and consistency proof from 5 depends on.
		e.setHash(t, tlog.StoredHashIndex(0, 4), [32]byte{})
		storeRecords(t, e, 4, 5)
		if _, err := in.Integrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		var refused *transparency.RefusedError
		if err := in.Checkpoint(t.Context()); !errors.As(err, &refused) {
			t.Fatalf("Checkpoint = %v, want refused", err)
		}
		if c, _ := e.store.LatestCheckpoint(t.Context()); c.Size != 5 {
			t.Fatalf("a checkpoint of %d leaves was stored", c.Size)
		}
		if notes, _ := transparency.ReadNotes(published); len(notes) != 1 {
			t.Fatalf("%d checkpoints published, want 1", len(notes))
		}
	})
}

// TestRunIntegratesWithinSeconds runs the integrator as the worker does.
func TestRunIntegratesWithinSeconds(t *testing.T) {
	bothStores(t, func(t *testing.T, e env) {
		key := newKey(t, testOrigin)
		sizes := make(chan int64, 100)
		in := transparency.NewIntegrator(e.store, transparency.Config{Origin: testOrigin, Key: key,
			Interval: 200 * time.Millisecond, Poll: 20 * time.Millisecond,
			OnCheckpoint: func(size int64, _ time.Duration) { sizes <- size }})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- in.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		storeRecords(t, e, 5, 30)
		deadline := time.After(10 * time.Second)
		for {
			select {
			case size := <-sizes:
				if size == 30 {
					return
				}
			case <-deadline:
				t.Fatal("no checkpoint of 30 leaves within 10 s")
			}
		}
	})
}

// pendingCalls records the range of each PendingRows call.
type pendingCalls struct {
	storetest.TreeStore
	calls [][2]int64 // (after, through]
}

func (p *pendingCalls) PendingRows(ctx context.Context, afterSeq, throughSeq int64, limit int) ([]audit.LeafRow, error) {
	p.calls = append(p.calls, [2]int64{afterSeq, throughSeq})
	return p.TreeStore.PendingRows(ctx, afterSeq, throughSeq, limit)
}

// since returns the calls made after the first n.
func (p *pendingCalls) since(n int) [][2]int64 { return p.calls[n:] }

// TestPassesReadOnlyHolesAndNewRows: while every id above the floor is a
// leaf the integrator appended, a pass reads only the rows above its last
// one; an id it did not append (an insert rolled back) is read on its own,
// in a range of its own, until the floor passes it. No pass walks every row
// above the floor again.
func TestPassesReadOnlyHolesAndNewRows(t *testing.T) {
	e := postgresEnv(t)
	p := &pendingCalls{TreeStore: e.store}
	in := transparency.NewIntegrator(p, transparency.Config{Origin: testOrigin, Key: newKey(t, testOrigin), Sweep: time.Hour})
	ctx := t.Context()
	pass := func() [][2]int64 {
		t.Helper()
		n := len(p.calls)
		if _, err := in.Integrate(ctx); err != nil {
			t.Fatal(err)
		}
		return p.since(n)
	}
	lastSeq := func() int64 {
		events := allEvents(t, e.store)
		return events[len(events)-1].Seq
	}
	storeRecords(t, e, 51, 3)
	pass()
	top := lastSeq()
	storeRecords(t, e, 52, 3)
	if calls := pass(); len(calls) != 1 || calls[0] != [2]int64{top, math.MaxInt64} {
		t.Fatalf("a pass over contiguous ids read %v, want only (%d, end]", calls, top)
	}
	// An id drawn and rolled back: a hole no row will fill.
	conn, err := pgx.Connect(ctx, e.pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var hole int64
	if err := conn.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))`).Scan(&hole); err != nil {
		t.Fatal(err)
	}
	storeRecords(t, e, 53, 3)
	pass()
	calls := pass()
	if len(calls) != 2 || calls[0][0] >= hole || calls[0][1] < hole || calls[1][1] != math.MaxInt64 {
		t.Fatalf("the pass after the hole %d read %v, want the hole's range, then the new rows", hole, calls)
	}
	// Once the horizon passed the hole, the floor is above it.
	testenv.Eventually(t, 10*time.Second, "the floor above the hole", func() bool {
		calls := pass()
		return len(calls) == 1 && calls[0][0] > hole
	})
	for _, c := range p.calls {
		if c[1] == math.MaxInt64 && c[0] < top && c != [2]int64{0, math.MaxInt64} {
			t.Fatalf("a pass walked from %d, below rows it had appended: %v", c[0], p.calls)
		}
	}
	if n, _ := e.store.TreeSize(ctx); n != int64(len(allEvents(t, e.store))) {
		t.Fatalf("tree of %d leaves for %d rows", n, len(allEvents(t, e.store)))
	}
}

// TestRestartGoesOnFromTheSavedFloor: a new integrator (a restarted worker)
// reads from the floor the last one saved, not from the first row; and its
// sweep, walking below the floor a span at a time, appends a row that is
// there without being a leaf.
func TestRestartGoesOnFromTheSavedFloor(t *testing.T) {
	e := postgresEnv(t)
	key := newKey(t, testOrigin)
	ctx := t.Context()
	first := transparency.NewIntegrator(e.store, transparency.Config{Origin: testOrigin, Key: key})
	storeRecords(t, e, 61, 20)
	// The floor rises once every transaction running when the rows were
	// read has ended, on the whole server (other tests' too).
	var floor int64
	testenv.Eventually(t, 20*time.Second, "a saved floor", func() bool {
		if err := first.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		f, err := e.store.Floor(ctx)
		floor = f
		return err == nil && f > 0
	})
	// A row below the floor that is not a leaf: it should never exist, and
	// the sweep is what finds it if it does.
	const low = -7
	e.exec(t, `INSERT INTO audit_log (id, "timestamp", timestamp_raw, action, status, idempotency_key, source, hash_status, signature_status, record_hash, received_at)
		SELECT -7, "timestamp", timestamp_raw, action, status, idempotency_key || ':below', source, hash_status, signature_status, record_hash, received_at
		FROM audit_log ORDER BY id LIMIT 1`)
	storeRecords(t, e, 62, 5)
	calls := &pendingCalls{TreeStore: e.store}
	second := transparency.NewIntegrator(calls, transparency.Config{Origin: testOrigin, Key: key, Sweep: time.Nanosecond, SweepSpan: 1000})
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(calls.calls) == 0 || calls.calls[0] != [2]int64{floor, math.MaxInt64} {
		t.Fatalf("the restarted integrator read %v, want (%d, end] first, above the saved floor", calls.calls, floor)
	}
	swept := false
	for _, c := range calls.calls {
		swept = swept || (c[0] == math.MinInt64 && c[1] <= floor)
	}
	if !swept {
		t.Fatalf("no sweep step below the floor %d: %v", floor, calls.calls)
	}
	if _, err := e.store.LeafOf(ctx, low); err != nil {
		t.Fatalf("the row %d below the floor was not appended by the sweep (%v): %v", low, calls.calls, err)
	}
	if n, _ := e.store.TreeSize(ctx); n != 26 {
		t.Fatalf("tree of %d leaves, want 26", n)
	}
}
