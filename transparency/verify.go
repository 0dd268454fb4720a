package transparency

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// Kinds of problem Verify reports.
const (
	ProblemModifiedRow     = "modified_row" // stored values no longer hash to the row's record hash
	ProblemReplacedRow     = "replaced_row" // the row's record hash is not the one integrated (rewritten with its hashes, or swapped)
	ProblemDeletedRow      = "deleted_row"  // a leaf's row is gone
	ProblemNotInTree       = "not_in_tree"  // a row no leaf names (inserted, or not integrated yet)
	ProblemMissingLeaf     = "missing_leaf" // a leaf index is missing
	ProblemStoredHash      = "stored_hash"  // a stored tree hash is missing or differs from the recomputed one
	ProblemCheckpointSig   = "checkpoint_signature"
	ProblemCheckpointRoot  = "checkpoint_root"  // a checkpoint's root is not the tree's
	ProblemCheckpointAhead = "checkpoint_ahead" // a checkpoint covers leaves that are gone (the tree was rolled back)
	ProblemPublished       = "published"        // the published checkpoints and the stored ones disagree
)

// Problem is one thing Verify found wrong. Seq and Leaf name the row and
// leaf when it is about one; Size names the checkpoint.
type Problem struct {
	Kind   string `json:"kind"`
	Seq    int64  `json:"id,omitempty"`
	Leaf   *int64 `json:"leaf,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	s := p.Kind
	if p.Seq != 0 {
		s += fmt.Sprintf(" id=%d", p.Seq)
	}
	if p.Leaf != nil {
		s += fmt.Sprintf(" leaf=%d", *p.Leaf)
	}
	if p.Size != 0 {
		s += fmt.Sprintf(" checkpoint=%d", p.Size)
	}
	return s + ": " + p.Detail
}

// VerifyOptions says what to check the store against.
type VerifyOptions struct {
	Verifier note.Verifier // the checkpoint signer's key
	// Published are checkpoints kept outside the database (the published
	// file, a copy someone kept), checked against the rebuilt tree and
	// against the stored checkpoints.
	Published []string
	// External are checkpoints given on the command line: each must verify
	// and be a checkpoint of the rebuilt tree.
	External []string
	HMACKey  []byte // to check producer signatures too; optional
	Batch    int    // rows read at a time; 0 means 10,000
	// Readers is how many pages are read at once, each on a connection of
	// its own, while one is checked; 0 means 2.
	Readers int
	// MaxProblems caps the problems kept (the count goes on); 0 means 1,000.
	MaxProblems int
	// Progress, when set, is called after each batch with the leaves read.
	Progress func(leaves int64)
}

// Report is the outcome of Verify.
type Report struct {
	OK            bool      `json:"ok"`
	Leaves        int64     `json:"leaves"`
	Checkpoints   int64     `json:"checkpoints"`
	Published     int       `json:"published"`
	ProblemsFound int64     `json:"problemsFound"`
	Problems      []Problem `json:"problems"`
}

type verifier struct {
	ctx      context.Context
	store    audit.TreeStore
	opts     VerifyOptions
	rep      *Report
	frontier map[int64]tlog.Hash
	// outside: trees of published and external checkpoints by size, with
	// where each comes from.
	outside map[int64][]outsideTree
	stored  []audit.Checkpoint // the next stored checkpoints, by size
	after   int64              // size of the last stored checkpoint read
	last    Tree               // the last stored checkpoint that verified
	// The stored hashes of the page at hand, reused from page to page.
	storedBuf [][32]byte
	haveBuf   []bool
}

type outsideTree struct {
	tree  Tree
	where string
}

func (v *verifier) problem(p Problem) {
	v.rep.ProblemsFound++
	if len(v.rep.Problems) < v.opts.MaxProblems {
		v.rep.Problems = append(v.rep.Problems, p)
	}
}

func leafRef(i int64) *int64 { return &i }

// Verify reads every leaf in leaf order with its row, in batches (memory does
// not grow with the log), recomputes each row's record hash, rebuilds the
// tree from the leaves and compares it with the stored hashes, every stored
// checkpoint (signature and root), the published and external checkpoints,
// and finds rows that no leaf names.
func Verify(ctx context.Context, s audit.TreeStore, opts VerifyOptions) (Report, error) {
	if opts.Batch <= 0 {
		opts.Batch = 10000
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 1000
	}
	if opts.Readers <= 0 {
		opts.Readers = 2
	}
	rep := &Report{Problems: []Problem{}}
	v := &verifier{ctx: ctx, store: s, opts: opts, rep: rep, frontier: map[int64]tlog.Hash{}, outside: map[int64][]outsideTree{}}
	v.readOutside("published checkpoint", opts.Published)
	v.readOutside("given checkpoint", opts.External)
	rep.Published = len(opts.Published)

	// The next pages are read while this one is checked: the database and
	// the hashing overlap, and Readers pages are read at once. A page is
	// fetched from where the one before it would end if full, with no
	// leaf missing; when one ends elsewhere (the end of the tree, a hole),
	// the pages fetched after it are dropped and reading goes on from there.
	// Every read is waited for before Verify returns.
	// A reader also checks its page's rows (rowIntact, the costly part of
	// verification: two SHA-256 sums over each row's text), so that the
	// checking runs on as many cores as there are readers.
	type fetched struct {
		from   int64
		page   []audit.LeafEvent
		intact []bool
		hashes pageHashes
		err    error
		done   chan struct{}
	}
	var queue []*fetched
	var ahead int64 // where the next page to fetch starts
	fetch := func(from int64) {
		f := &fetched{from: from, done: make(chan struct{})}
		queue, ahead = append(queue, f), from+int64(opts.Batch)
		go func() {
			defer close(f.done)
			f.page, f.err = s.LeafEvents(ctx, from, opts.Batch)
			if f.err == nil {
				f.hashes = readPageHashes(ctx, s, from, f.page)
				f.intact = make([]bool, len(f.page))
				var scratch []byte
				for i := range f.page {
					f.intact[i], scratch = rowIntact(f.page[i], opts.HMACKey, scratch)
				}
			}
		}()
	}
	drain := func() {
		for _, f := range queue {
			<-f.done
		}
		queue = nil
	}
	defer drain()
	next := int64(0)
	for {
		for len(queue) < opts.Readers {
			fetch(ahead)
		}
		f := queue[0]
		<-f.done
		queue = queue[1:]
		if f.err != nil {
			return *rep, f.err
		}
		if len(f.page) == 0 {
			break
		}
		if end := f.page[len(f.page)-1].Index + 1; end != f.from+int64(opts.Batch) {
			drain()
			ahead = end
		}
		if err := v.leaves(f.page, f.intact, f.hashes, &next); err != nil {
			return *rep, err
		}
		if opts.Progress != nil {
			opts.Progress(next)
		}
	}
	rep.Leaves = next
	if err := v.checkpointsUpTo(next, true); err != nil {
		return *rep, err
	}
	for size, ts := range v.outside {
		for _, o := range ts {
			v.problem(Problem{Kind: ProblemCheckpointAhead, Size: size,
				Detail: fmt.Sprintf("the %s of %d leaves covers more than the %d leaves the tree has: leaves were removed", o.where, size, next)})
		}
	}
	if err := v.notInTree(); err != nil {
		return *rep, err
	}
	rep.OK = rep.ProblemsFound == 0
	return *rep, nil
}

// readOutside reads checkpoints kept outside the store.
func (v *verifier) readOutside(where string, notes []string) {
	for i, n := range notes {
		t, err := Open(n, v.opts.Verifier)
		if err != nil {
			v.problem(Problem{Kind: ProblemCheckpointSig, Detail: fmt.Sprintf("%s #%d: %v", where, i+1, err)})
			continue
		}
		v.outside[t.Size] = append(v.outside[t.Size], outsideTree{t, where})
	}
}

// pageHashes are the stored hashes a page of leaves adds, read with the
// page: hashes[i] is hash lo+i. Read is false when the page does not start
// at from or has a hole (the leaves before it decide what it needs).
type pageHashes struct {
	read   bool
	lo     int64
	hashes [][32]byte
	err    error
}

func readPageHashes(ctx context.Context, s audit.TreeStore, from int64, page []audit.LeafEvent) pageHashes {
	if len(page) == 0 || page[0].Index != from || page[len(page)-1].Index-from != int64(len(page)-1) {
		return pageHashes{}
	}
	lo, hi := tlog.StoredHashCount(from), tlog.StoredHashCount(page[len(page)-1].Index+1)
	if hi <= lo {
		return pageHashes{read: true, lo: lo}
	}
	idx := make([]int64, 0, hi-lo)
	for i := lo; i < hi; i++ {
		idx = append(idx, i)
	}
	hs, err := s.ReadHashes(ctx, idx)
	return pageHashes{read: true, lo: lo, hashes: hs, err: err}
}

// leaves checks a page of leaves and adds them to the rebuilt tree; intact
// says which rows rowIntact found intact, and pre are the page's stored
// hashes when they were read with it.
func (v *verifier) leaves(page []audit.LeafEvent, intact []bool, pre pageHashes, next *int64) error {
	first := *next
	// The stored hashes this page's leaves add: stored[x-lo] is hash x, when
	// have says it is there.
	lo, hi := tlog.StoredHashCount(first), tlog.StoredHashCount(page[len(page)-1].Index+1)
	stored, have := v.storedBuf[:0], v.haveBuf[:0]
	if hi > lo && page[len(page)-1].Index-first == int64(len(page)-1) {
		idx := make([]int64, 0, hi-lo)
		for i := lo; i < hi; i++ {
			idx = append(idx, i)
		}
		hs, err := pre.hashes, pre.err
		if !pre.read || pre.lo != lo || (err == nil && len(hs) != len(idx)) {
			hs, err = v.store.ReadHashes(v.ctx, idx)
		}
		if err == nil {
			stored = append(stored, hs...)
			for range hs {
				have = append(have, true)
			}
		} else if audit.ErrorCode(err) != audit.CodeNotFound {
			return err
		} else if stored, have, err = v.readHashesOneByOne(idx, stored, have); err != nil {
			return err
		}
	}
	v.storedBuf, v.haveBuf = stored, have
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			h, ok := v.frontier[x]
			if !ok {
				return nil, fmt.Errorf("rebuilt tree hash %d is not at hand", x)
			}
			out[i] = h
		}
		return out, nil
	})
	for k, le := range page {
		if le.Index != *next {
			// Leaves cannot be rebuilt past a hole: stop the tree here.
			v.problem(Problem{Kind: ProblemMissingLeaf, Leaf: leafRef(*next),
				Detail: fmt.Sprintf("leaves %d..%d are missing (the next stored leaf is %d)", *next, le.Index-1, le.Index)})
			return fmt.Errorf("the tree cannot be rebuilt past missing leaf %d", *next)
		}
		if !intact[k] {
			v.row(le)
		}
		hs, err := tlog.StoredHashes(le.Index, le.RecordHash[:], r)
		if err != nil {
			return err
		}
		base := tlog.StoredHashCount(le.Index)
		for i, h := range hs {
			x := base + int64(i)
			v.frontier[x] = h
			if x-lo >= int64(len(have)) || !have[x-lo] {
				v.problem(Problem{Kind: ProblemStoredHash, Seq: le.Seq, Leaf: leafRef(le.Index),
					Detail: fmt.Sprintf("stored tree hash %d is missing", x)})
			} else if got := stored[x-lo]; got != h {
				v.problem(Problem{Kind: ProblemStoredHash, Seq: le.Seq, Leaf: leafRef(le.Index),
					Detail: fmt.Sprintf("stored tree hash %d is %x, the leaves give %x", x, got[:4], h[:4])})
			}
		}
		*next++
		if err := v.checkpointsUpTo(*next, false); err != nil {
			return err
		}
	}
	v.prune(*next)
	return nil
}

// readHashesOneByOne reads what is there of idx when some are missing.
func (v *verifier) readHashesOneByOne(idx []int64, stored [][32]byte, have []bool) ([][32]byte, []bool, error) {
	for _, x := range idx {
		hs, err := v.store.ReadHashes(v.ctx, []int64{x})
		if audit.ErrorCode(err) == audit.CodeNotFound {
			stored, have = append(stored, [32]byte{}), append(have, false)
			continue
		}
		if err != nil {
			return stored, have, err
		}
		stored, have = append(stored, hs[0]), append(have, true)
	}
	return stored, have, nil
}

// row says what is wrong with a leaf's row that rowIntact did not find
// intact: gone, changed, or not the one integrated.
func (v *verifier) row(le audit.LeafEvent) {
	integrated := hex.EncodeToString(le.RecordHash[:])
	if le.Event == nil {
		v.problem(Problem{Kind: ProblemDeletedRow, Seq: le.Seq, Leaf: leafRef(le.Index),
			Detail: fmt.Sprintf("no row with id %d and event time %s (deleted, or its id or time changed); it had record hash %s",
				le.Seq, le.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), integrated)})
		return
	}
	check := audit.VerifyStored(le.Event, v.opts.HMACKey)
	for _, c := range check.Checks {
		if !c.OK {
			v.problem(Problem{Kind: ProblemModifiedRow, Seq: le.Seq, Leaf: leafRef(le.Index),
				Detail: fmt.Sprintf("%s: the row holds %s, its values give %s", c.Name, c.Expected, c.Found)})
		}
	}
	if le.Event.RecordHash != integrated {
		v.problem(Problem{Kind: ProblemReplacedRow, Seq: le.Seq, Leaf: leafRef(le.Index),
			Detail: fmt.Sprintf("the row's record hash is %s, the leaf integrated %s (the row was rewritten with its hashes, or swapped)",
				le.Event.RecordHash, integrated)})
	}
}

// rowIntact reports whether the leaf's row is there and every check of it
// would hold, without the allocations of audit.VerifyStored: nearly every
// row is intact, and a row that is not is checked again by VerifyStored,
// which says what differs. scratch is a buffer for the hashed text, reused
// from row to row.
func rowIntact(le audit.LeafEvent, key, scratch []byte) (bool, []byte) {
	e := le.Event
	if e == nil {
		return false, scratch
	}
	var sum [32]byte
	sum, scratch = e.RecordHashSum(scratch)
	if sum != le.RecordHash || !hexOf(e.RecordHash, &sum) {
		return false, scratch
	}
	signed := e.Signature != "" && len(key) > 0 && (e.SignatureAlgorithm == "" || e.SignatureAlgorithm == "HMAC-SHA256")
	if e.Hash == "" && !signed {
		return true, scratch
	}
	sum, scratch = e.HashSum(scratch)
	if e.Hash != "" && !hexOf(e.Hash, &sum) {
		return false, scratch
	}
	return !signed || audit.VerifySignature(hex.EncodeToString(sum[:]), e.Signature, key), scratch
}

// hexOf reports whether s is the lowercase hex of sum, in constant time as
// the checks of audit.VerifyStored are.
func hexOf(s string, sum *[32]byte) bool {
	var want [64]byte
	hex.Encode(want[:], sum[:])
	if len(s) != len(want) {
		return false
	}
	var diff byte
	for i := range want {
		diff |= s[i] ^ want[i]
	}
	return diff == 0
}

// checkpointsUpTo checks the stored and outside checkpoints of a tree of
// size leaves (all remaining stored ones when final).
func (v *verifier) checkpointsUpTo(size int64, final bool) error {
	for {
		if len(v.stored) == 0 {
			if v.after < 0 {
				break
			}
			cs, err := v.store.Checkpoints(v.ctx, v.after, 1000)
			if err != nil {
				return err
			}
			if len(cs) == 0 {
				v.after = -1 // none left
				break
			}
			v.stored, v.after = cs, cs[len(cs)-1].Size
		}
		c := v.stored[0]
		if c.Size > size && !final {
			break
		}
		v.stored = v.stored[1:]
		v.rep.Checkpoints++
		t, err := Open(c.Note, v.opts.Verifier)
		if err != nil {
			v.problem(Problem{Kind: ProblemCheckpointSig, Size: c.Size, Detail: "stored checkpoint: " + err.Error()})
			continue
		}
		if t.Size != c.Size {
			v.problem(Problem{Kind: ProblemCheckpointSig, Size: c.Size, Detail: fmt.Sprintf("stored under size %d, the note says %d", c.Size, t.Size)})
			continue
		}
		if c.Size > size {
			v.problem(Problem{Kind: ProblemCheckpointAhead, Size: c.Size,
				Detail: fmt.Sprintf("the stored checkpoint of %d leaves covers more than the %d leaves the tree has: leaves were removed", c.Size, size)})
			continue
		}
		if err := v.checkRoot("stored checkpoint", t); err != nil {
			return err
		}
		v.last = t
		if out, ok := v.outside[c.Size]; ok {
			for _, o := range out {
				if o.tree.Root != t.Root {
					v.problem(Problem{Kind: ProblemPublished, Size: c.Size, Detail: fmt.Sprintf("the %s and the stored checkpoint of %d leaves have different roots", o.where, c.Size)})
				}
			}
		} else if v.opts.Published != nil && v.latestPublished() < c.Size {
			v.problem(Problem{Kind: ProblemPublished, Size: c.Size,
				Detail: fmt.Sprintf("the stored checkpoint of %d leaves is not published; the published checkpoints end at %d leaves (the published file was rolled back, or publishing failed)", c.Size, v.latestPublished())})
		}
	}
	// Outside checkpoints of exactly this size.
	if out, ok := v.outside[size]; ok {
		for _, o := range out {
			if err := v.checkRoot(o.where, o.tree); err != nil {
				return err
			}
		}
		delete(v.outside, size)
	}
	return nil
}

func (v *verifier) latestPublished() int64 {
	var n int64
	for size, ts := range v.outside {
		for _, o := range ts {
			if o.where == "published checkpoint" {
				n = max(n, size)
			}
		}
	}
	return n
}

// checkRoot compares a checkpoint's root with the rebuilt tree's.
func (v *verifier) checkRoot(where string, t Tree) error {
	root, err := tlog.TreeHash(t.Size, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			h, ok := v.frontier[x]
			if !ok {
				return nil, fmt.Errorf("rebuilt tree hash %d is not at hand", x)
			}
			out[i] = h
		}
		return out, nil
	}))
	if err != nil {
		return err
	}
	if root != t.Root {
		v.problem(Problem{Kind: ProblemCheckpointRoot, Size: t.Size,
			Detail: fmt.Sprintf("the %s of %d leaves has root %s, the leaves give %s", where, t.Size, t.Root, root)})
	}
	return nil
}

// prune keeps only the hashes of the complete subtrees a tree of size
// leaves is made of: all that later leaves and roots need.
func (v *verifier) prune(size int64) {
	keep := map[int64]bool{}
	pos := int64(0)
	for level := 62; level >= 0; level-- {
		if size&(1<<level) != 0 {
			keep[tlog.StoredHashIndex(level, pos>>level)] = true
			pos += 1 << level
		}
	}
	for _, x := range slices.Collect(maps.Keys(v.frontier)) {
		if !keep[x] {
			delete(v.frontier, x)
		}
	}
}

// notInTree reports every row no leaf names.
func (v *verifier) notInTree() error {
	after := int64(0)
	for {
		rows, err := v.store.PendingRows(v.ctx, after, math.MaxInt64, v.opts.Batch)
		if err != nil {
			return err
		}
		for _, r := range rows {
			v.problem(Problem{Kind: ProblemNotInTree, Seq: r.Seq,
				Detail: fmt.Sprintf("row %d (record hash %x) is in no leaf: inserted outside the worker, or not integrated yet", r.Seq, r.RecordHash)})
		}
		if len(rows) < v.opts.Batch {
			return nil
		}
		after = rows[len(rows)-1].Seq
	}
}
