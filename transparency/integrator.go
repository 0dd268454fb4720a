package transparency

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// Config says how the integrator runs.
type Config struct {
	Origin string // the checkpoint's first line, e.g. "audit-worker.local/host"
	Key    Key
	// Interval: a checkpoint is signed this long after the last one at the
	// latest, when the tree grew. 0 means 5 s.
	Interval time.Duration
	// MaxRows: a checkpoint is signed as soon as the tree grew by this many
	// leaves. 0 means 10,000.
	MaxRows int64
	// Batch is how many rows one append integrates. 0 means 10,000.
	Batch int
	// Poll is how often an idle integrator looks for new rows. 0 means 250 ms.
	Poll time.Duration
	// Sweep is how often the integrator walks SweepSpan ids below its floor
	// for rows that are not leaves, a check that the floor holds that covers
	// the whole table over time; 0 means 1 minute. SweepSpan 0 means 100,000.
	Sweep      time.Duration
	SweepSpan  int64
	Publishers []Publisher
	Logger     *slog.Logger
	// OnCheckpoint, when set, is called after each checkpoint is stored and
	// published (metrics, tests).
	OnCheckpoint func(size int64, lag time.Duration)
	// OnRefused, when set, is called when a checkpoint is refused because the
	// tree is not an extension of the last one published.
	OnRefused func(err error)
}

// Integrator gives stored rows their leaf index, appends their hashes to the
// tree and signs checkpoints. One runs at a time per database
// (TreeStore.LockIntegrator).
type Integrator struct {
	store audit.TreeStore
	cfg   Config
	log   *slog.Logger

	size int64 // leaves, as of the last append (-1: read it)
	// floor: every row with Seq <= floor is a leaf or will never be visible
	// to anyone. marks are candidate floors waiting for the transactions
	// that were running when they were taken to end.
	floor     int64
	marks     []mark
	maxSeq    int64
	savedAt   time.Time // when the floor was last saved
	lastSweep time.Time // when the last sweep step ran
	sweepAt   int64     // where the next sweep step starts
	// cursor: after a full batch, the next pass goes on from its last row
	// instead of walking again from the floor; a pass that drains goes
	// back to the floor, which finds rows that appeared below the cursor.
	cursor int64
	// appended: the Seqs above the floor this integrator appended, sorted.
	appended []int64

	signed     Tree      // the last checkpoint signed or found published
	signedAt   time.Time // when it was signed
	oldestWait time.Time // when the oldest leaf not in a checkpoint was appended
}

type mark struct {
	xmax int64
	seq  int64
}

// NewIntegrator returns an integrator of the tree in s.
func NewIntegrator(s audit.TreeStore, cfg Config) *Integrator {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 10000
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 10000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = time.Minute
	}
	if cfg.SweepSpan <= 0 {
		cfg.SweepSpan = 100000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Integrator{store: s, cfg: cfg, log: log, size: -1, lastSweep: time.Now()}
}

// Run integrates and checkpoints until ctx ends. While another replica
// holds the integrator lock it waits and tries again; a failing pass is
// logged and retried after a pause, so that a database outage does not end
// the worker.
func (in *Integrator) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		unlock, err := in.store.LockIntegrator(ctx)
		if err != nil {
			if audit.ErrorCode(err) != audit.CodeConflict {
				in.log.Warn("tree integrator: lock", "err", err)
			}
			sleep(ctx, in.cfg.Interval)
			continue
		}
		in.log.Info("tree integrator: running")
		err = in.loop(ctx)
		unlock()
		if err != nil && ctx.Err() == nil {
			in.log.Error("tree integrator stopped; retrying", "err", err)
			sleep(ctx, in.cfg.Interval)
		}
	}
	return nil
}

// Flush integrates every row stored so far and signs a checkpoint of them,
// unless another replica integrates (it will): the worker calls it on
// shutdown, once nothing more is stored, so that no row waits for the next
// start to be in a checkpoint.
func (in *Integrator) Flush(ctx context.Context) error {
	unlock, err := in.store.LockIntegrator(ctx)
	if audit.ErrorCode(err) == audit.CodeConflict {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	in.size = -1
	if err := in.loadSigned(ctx); err != nil {
		return err
	}
	if err := in.loadFloor(ctx); err != nil {
		return err
	}
	for {
		n, err := in.Integrate(ctx)
		if err != nil {
			return err
		}
		if n < in.cfg.Batch {
			break
		}
	}
	// One more pass settles the marks of the last ones, so that the floor
	// saved for the next start is as high as it can be.
	if _, err := in.Integrate(ctx); err != nil {
		return err
	}
	if err := in.store.SaveFloor(ctx, in.floor); err != nil {
		return err
	}
	return in.Checkpoint(ctx)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// loop runs passes while it holds the lock. A refused checkpoint ends it
// with the error: signing must stop until an operator looks.
func (in *Integrator) loop(ctx context.Context) error {
	in.size = -1
	if err := in.loadSigned(ctx); err != nil {
		return err
	}
	if err := in.loadFloor(ctx); err != nil {
		return err
	}
	failures := 0
	for ctx.Err() == nil {
		n, err := in.Integrate(ctx)
		if err == nil {
			err = in.maybeCheckpoint(ctx, time.Now())
		}
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			return err
		case err != nil && ctx.Err() == nil:
			failures++
			in.size = -1
			in.log.Warn("tree integrator: pass failed", "err", err, "failures", failures)
			sleep(ctx, min(time.Duration(failures)*in.cfg.Poll, in.cfg.Interval))
			continue
		}
		failures = 0
		if n < in.cfg.Batch {
			sleep(ctx, in.cfg.Poll)
		}
	}
	return nil
}

// loadFloor starts from the floor saved by the last integrator, when it is
// above this one's: a restarted worker does not walk the whole table again.
func (in *Integrator) loadFloor(ctx context.Context) error {
	floor, err := in.store.Floor(ctx)
	if err != nil {
		return err
	}
	if floor > in.floor {
		in.floor, in.appended = floor, nil
		in.marks = slices.DeleteFunc(in.marks, func(m mark) bool { return m.seq <= floor })
	}
	return nil
}

// loadSigned reads the last checkpoint stored, the one every new checkpoint
// must extend.
func (in *Integrator) loadSigned(ctx context.Context) error {
	c, err := in.store.LatestCheckpoint(ctx)
	switch {
	case audit.ErrorCode(err) == audit.CodeNotFound:
		in.signed = Tree{Origin: in.cfg.Origin}
		return in.loadPublished()
	case err != nil:
		return err
	}
	t, err := Open(c.Note, in.cfg.Key.Verifier)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("the latest stored checkpoint (size %d) does not verify: %v", c.Size, err)}
	}
	in.signed, in.signedAt = t, c.CreatedAt
	return in.loadPublished()
}

// loadPublished makes the last checkpoint of a published file the one to
// extend when it is larger than the database's: a database rolled back to
// an earlier state must not be signed again.
func (in *Integrator) loadPublished() error {
	for _, p := range in.cfg.Publishers {
		fp, ok := p.(*FilePublisher)
		if !ok {
			continue
		}
		notes, err := ReadNotes(fp.Path)
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(notes) == 0) {
			continue
		}
		if err != nil {
			return err
		}
		t, err := Open(notes[len(notes)-1], in.cfg.Key.Verifier)
		if err != nil {
			return &RefusedError{Reason: fmt.Sprintf("the last checkpoint published in %s does not verify: %v", fp.Path, err)}
		}
		if t.Size > in.signed.Size {
			in.signed = t
		}
	}
	return nil
}

// Integrate appends up to one batch of rows that are not leaves yet, and
// returns how many it appended.
func (in *Integrator) Integrate(ctx context.Context) (int, error) {
	if in.size < 0 {
		size, err := in.store.TreeSize(ctx)
		if err != nil {
			return 0, err
		}
		in.size = size
	}
	// Rows of transactions that were running when a mark was taken are
	// visible now if those transactions all ended before this horizon.
	h, err := in.store.Horizon(ctx)
	if err != nil {
		return 0, err
	}
	candidate, settled := in.floor, 0
	for settled < len(in.marks) && in.marks[settled].xmax <= h.Xmin {
		candidate = max(candidate, in.marks[settled].seq)
		settled++
	}
	// A row above the floor that is not a leaf yet has an id this
	// integrator did not append: one in a hole between the rows it
	// appended (a batch still in flight or committed late, an id skipped
	// by a rolled-back insert or a duplicate, a leaf of another
	// integrator), or above its last row. The pass reads those ranges
	// alone, instead of every row above the floor again; with too many
	// holes (a restart, another integrator's leaves), it walks from the
	// floor.
	var holes [][2]int64
	if in.cursor == 0 {
		holes = in.holes()
	}
	var rows []audit.LeafRow
	complete := true // every range read to its end
	read := func(after, through int64) error {
		got, err := in.store.PendingRows(ctx, after, through, in.cfg.Batch-len(rows))
		rows = append(rows, got...)
		complete = complete && len(rows) < in.cfg.Batch
		return err
	}
	walk := in.cursor > 0 || len(holes) > maxHoleReads
	if walk {
		from := max(in.floor, in.cursor)
		if err := read(from, math.MaxInt64); err != nil {
			return 0, err
		}
		complete = complete && from <= in.floor
	} else {
		for _, h := range holes {
			if err := read(h[0], h[1]); err != nil {
				return 0, err
			}
			if !complete {
				break // the batch is full: the rest waits for the next pass
			}
		}
		if complete {
			if err := read(max(in.floor, in.maxSeq), math.MaxInt64); err != nil {
				return 0, err
			}
		}
	}
	slices.SortFunc(rows, func(a, b audit.LeafRow) int { return cmp.Compare(a.Seq, b.Seq) })
	if err := in.append(ctx, rows); err != nil {
		return 0, err
	}
	in.cursor = 0
	if walk && len(rows) == in.cfg.Batch {
		in.cursor = rows[len(rows)-1].Seq
	}
	if complete {
		// Everything visible above the floor is a leaf: the candidate's
		// rows, visible since the horizon, were among them.
		in.floor = candidate
		in.marks = in.marks[settled:]
		drop, _ := slices.BinarySearch(in.appended, in.floor+1)
		in.appended = slices.Delete(in.appended, 0, drop)
		if time.Since(in.savedAt) >= time.Second {
			if err := in.store.SaveFloor(ctx, in.floor); err != nil {
				return len(rows), err
			}
			in.savedAt = time.Now()
		}
	}
	swept, err := in.sweep(ctx)
	if err != nil {
		return len(rows), err
	}
	// A transaction running now that drew a Seq below maxSeq has a
	// transaction id below the xmax read after this pass.
	after, err := in.store.Horizon(ctx)
	if err != nil {
		return len(rows), err
	}
	if len(in.marks) == 0 || in.marks[len(in.marks)-1].seq < in.maxSeq {
		in.marks = append(in.marks, mark{xmax: after.Xmax, seq: in.maxSeq})
	}
	return len(rows) + swept, nil
}

// append makes rows leaves, after the tree's current ones.
func (in *Integrator) append(ctx context.Context, rows []audit.LeafRow) error {
	if len(rows) == 0 {
		return nil
	}
	hashes, err := hashesFor(ctx, in.store, in.size, rows)
	if err != nil {
		return err
	}
	if err := in.store.AppendLeaves(ctx, in.size, rows, hashes); err != nil {
		in.size = -1
		return err
	}
	if in.size == in.signed.Size || in.oldestWait.IsZero() {
		in.oldestWait = time.Now()
	}
	in.size += int64(len(rows))
	in.maxSeq = max(in.maxSeq, rows[len(rows)-1].Seq)
	// rows are in Seq order; they extend appended in order unless they
	// filled holes below its end.
	sorted := len(in.appended) == 0 || rows[0].Seq > in.appended[len(in.appended)-1]
	for _, r := range rows {
		if r.Seq > in.floor {
			in.appended = append(in.appended, r.Seq)
		}
	}
	if !sorted {
		slices.Sort(in.appended)
	}
	return nil
}

// sweep walks the next SweepSpan ids below the floor, once per Sweep, and
// appends the rows there that are not leaves; there should be none, so each
// is logged. The walk starts again from the first id when it reaches the
// floor.
func (in *Integrator) sweep(ctx context.Context) (int, error) {
	if in.floor == 0 || time.Since(in.lastSweep) < in.cfg.Sweep {
		return 0, nil
	}
	if in.sweepAt >= in.floor {
		in.sweepAt = 0
	}
	through := min(in.sweepAt+in.cfg.SweepSpan, in.floor)
	after := in.sweepAt
	if after == 0 {
		after = math.MinInt64 // ids of the log start at 1; a row below is a row too
	}
	rows, err := in.store.PendingRows(ctx, after, through, in.cfg.Batch)
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		in.log.Warn("tree integrator: a row below the floor was not a leaf; appending it", "id", r.Seq)
	}
	if err := in.append(ctx, rows); err != nil {
		return 0, err
	}
	in.sweepAt, in.lastSweep = through, time.Now()
	if len(rows) == in.cfg.Batch {
		in.sweepAt = rows[len(rows)-1].Seq
	}
	return len(rows), nil
}

// maxHoleReads: a pass with more holes than this walks from the floor.
const maxHoleReads = 8

// holes returns the ranges (after, through] of ids above the floor and up
// to the last row this integrator appended that it did not append.
func (in *Integrator) holes() [][2]int64 {
	var out [][2]int64
	prev := in.floor
	for _, seq := range in.appended {
		if seq > prev+1 {
			out = append(out, [2]int64{prev, seq - 1})
			if len(out) > maxHoleReads {
				return out // too many: the pass walks from the floor
			}
		}
		prev = seq
	}
	if in.maxSeq > prev {
		out = append(out, [2]int64{prev, in.maxSeq})
	}
	return out
}

// maybeCheckpoint signs a checkpoint when the tree grew by MaxRows leaves,
// or grew at all and Interval passed since the last checkpoint.
func (in *Integrator) maybeCheckpoint(ctx context.Context, now time.Time) error {
	grown := in.size - in.signed.Size
	if in.size < 0 || grown <= 0 {
		return nil
	}
	if grown < in.cfg.MaxRows && now.Sub(in.signedAt) < in.cfg.Interval {
		return nil
	}
	return in.Checkpoint(ctx)
}

// RefusedError: the tree is not an extension of the last checkpoint, so no
// checkpoint is signed.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "checkpoint refused: " + e.Reason }

// Checkpoint signs, stores and publishes a checkpoint of the whole tree,
// after checking that it extends the last one.
func (in *Integrator) Checkpoint(ctx context.Context) error {
	size, err := in.store.TreeSize(ctx)
	if err != nil {
		return err
	}
	if size == 0 || size == in.signed.Size {
		return nil
	}
	r := storeHashes(ctx, in.store)
	root, err := tlog.TreeHash(size, r)
	if err != nil {
		return err
	}
	if err := in.extends(size, root, r); err != nil {
		if in.cfg.OnRefused != nil {
			in.cfg.OnRefused(err)
		}
		in.log.Error("tree integrator: checkpoint refused", "err", err)
		return err
	}
	t := Tree{Origin: in.cfg.Origin, Size: size, Root: root}
	signed, err := Sign(t, in.cfg.Key.Signer)
	if err != nil {
		return err
	}
	now := time.Now()
	// Published first: a checkpoint in the database is one the world can
	// hold the log to.
	for _, p := range in.cfg.Publishers {
		if err := p.Publish(ctx, size, signed); err != nil {
			return err
		}
	}
	if err := in.store.AddCheckpoint(ctx, audit.Checkpoint{Size: size, Note: signed, CreatedAt: now}); err != nil && audit.ErrorCode(err) != audit.CodeConflict {
		return err
	}
	lag := time.Duration(0)
	if !in.oldestWait.IsZero() {
		lag = now.Sub(in.oldestWait)
	}
	in.signed, in.signedAt, in.oldestWait = t, now, time.Time{}
	in.size = size
	in.log.Debug("tree checkpoint signed", "size", size)
	if in.cfg.OnCheckpoint != nil {
		in.cfg.OnCheckpoint(size, lag)
	}
	return nil
}

// extends checks, with a consistency proof computed from the stored hashes,
// that the tree of size leaves and root extends the last checkpoint.
func (in *Integrator) extends(size int64, root tlog.Hash, r tlog.HashReader) error {
	old := in.signed
	switch {
	case old.Size == 0:
		return nil
	case old.Origin != in.cfg.Origin:
		return &RefusedError{Reason: fmt.Sprintf("the last checkpoint is of origin %q, not %q", old.Origin, in.cfg.Origin)}
	case size < old.Size:
		return &RefusedError{Reason: fmt.Sprintf("the tree has %d leaves, fewer than the %d of the last checkpoint: leaves were removed", size, old.Size)}
	}
	proof, err := tlog.ProveTree(size, old.Size, r)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("consistency proof from %d to %d: %v", old.Size, size, err)}
	}
	if err := tlog.CheckTree(proof, size, root, old.Size, old.Root); err != nil {
		return &RefusedError{Reason: fmt.Sprintf("the tree of %d leaves does not extend the checkpoint of %d: %v", size, old.Size, err)}
	}
	return nil
}
