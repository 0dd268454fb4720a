package transparency

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// InclusionProof proves that a row's record hash is leaf Index of the tree of
// Size leaves that Checkpoint signs. Its JSON is the answer of
// GET /v1/events/{id}/proof.
type InclusionProof struct {
	Index      int64    `json:"index"`
	Size       int64    `json:"size"`
	Leaf       string   `json:"leaf"`   // the row's record hash, hex
	Hashes     []string `json:"hashes"` // base64, from the leaf up
	Checkpoint string   `json:"checkpoint"`
	Proof      string   `json:"proof"` // the same as a C2SP tlog-proof
}

// ProveInclusion proves the row seq in the checkpoint of size leaves, or in
// the latest checkpoint when size is 0. CodeConflict when the row is not in
// a checkpoint yet (it will be within seconds), CodeNotFound when there is
// no checkpoint of that size, CodeInvalid when that checkpoint is older than
// the row.
func ProveInclusion(ctx context.Context, s audit.TreeStore, seq, size int64) (InclusionProof, error) {
	leaf, err := s.LeafOf(ctx, seq)
	if audit.ErrorCode(err) == audit.CodeNotFound {
		return InclusionProof{}, audit.Errorf(audit.CodeConflict, "event %d is not yet in a checkpoint; retry in a few seconds", seq)
	}
	if err != nil {
		return InclusionProof{}, err
	}
	c, err := checkpointFor(ctx, s, size)
	if size == 0 && audit.ErrorCode(err) == audit.CodeNotFound {
		return InclusionProof{}, audit.Errorf(audit.CodeConflict, "event %d is not yet in a checkpoint; retry in a few seconds", seq)
	}
	if err != nil {
		return InclusionProof{}, err
	}
	switch {
	case leaf.Index >= c.Size && size == 0:
		return InclusionProof{}, audit.Errorf(audit.CodeConflict,
			"event %d is leaf %d, not yet in a checkpoint (the latest has %d leaves); retry in a few seconds", seq, leaf.Index, c.Size)
	case leaf.Index >= c.Size:
		return InclusionProof{}, audit.Errorf(audit.CodeInvalid,
			"size: event %d is leaf %d, after the %d leaves of that checkpoint", seq, leaf.Index, c.Size)
	}
	p, err := tlog.ProveRecord(c.Size, leaf.Index, storeHashes(ctx, s))
	if err != nil {
		return InclusionProof{}, err
	}
	out := InclusionProof{Index: leaf.Index, Size: c.Size, Leaf: hex.EncodeToString(leaf.RecordHash[:]),
		Hashes: encodeHashes(p), Checkpoint: c.Note}
	out.Proof = tlogProofText(out)
	return out, nil
}

// checkpointFor returns the checkpoint of size leaves, or the latest for 0.
func checkpointFor(ctx context.Context, s audit.TreeStore, size int64) (audit.Checkpoint, error) {
	if size == 0 {
		c, err := s.LatestCheckpoint(ctx)
		if audit.ErrorCode(err) == audit.CodeNotFound {
			return c, audit.Errorf(audit.CodeNotFound, "no checkpoint is signed yet; retry in a few seconds")
		}
		return c, err
	}
	c, err := s.CheckpointAt(ctx, size)
	if audit.ErrorCode(err) == audit.CodeNotFound {
		return c, audit.Errorf(audit.CodeNotFound, "size: no checkpoint of %d leaves was signed", size)
	}
	return c, err
}

func encodeHashes[H ~[]tlog.Hash](hs H) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// tlogProofText is the c2sp.org/tlog-proof@v1 form of p: the header, the
// leaf index, the proof hashes one a line, a blank line, the checkpoint.
func tlogProofText(p InclusionProof) string {
	var b strings.Builder
	b.WriteString("c2sp.org/tlog-proof@v1\nindex ")
	b.WriteString(strconv.FormatInt(p.Index, 10))
	b.WriteString("\n")
	for _, h := range p.Hashes {
		b.WriteString(h)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString(p.Checkpoint)
	return b.String()
}

// ConsistencyProof proves that the tree of To leaves extends the tree of
// From leaves. Its JSON is the answer of GET /v1/checkpoints/consistency.
type ConsistencyProof struct {
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Hashes []string `json:"hashes"`
}

// ProveConsistency proves that the checkpointed tree of to leaves (the
// latest checkpoint when to is 0) extends the tree of from leaves.
func ProveConsistency(ctx context.Context, s audit.TreeStore, from, to int64) (ConsistencyProof, error) {
	c, err := checkpointFor(ctx, s, to)
	if err != nil {
		return ConsistencyProof{}, err
	}
	if from < 1 || from > c.Size {
		return ConsistencyProof{}, audit.Errorf(audit.CodeInvalid, "from: %d is outside 1..%d, the sizes the checkpoint of %d leaves extends", from, c.Size, c.Size)
	}
	p, err := tlog.ProveTree(c.Size, from, storeHashes(ctx, s))
	if err != nil {
		return ConsistencyProof{}, err
	}
	return ConsistencyProof{From: from, To: c.Size, Hashes: encodeHashes(p)}, nil
}

// CheckInclusion checks p's hashes lead from leaf (the record hash) to the
// root of tree.
func CheckInclusion(p InclusionProof, leaf []byte, tree Tree) error {
	if tree.Size != p.Size {
		return audit.Errorf(audit.CodeIntegrity, "the proof is for %d leaves, the checkpoint has %d", p.Size, tree.Size)
	}
	hashes := make(tlog.RecordProof, len(p.Hashes))
	for i, h := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			return audit.Errorf(audit.CodeIntegrity, "proof hash %d is not a base64 SHA-256 hash", i)
		}
		copy(hashes[i][:], b)
	}
	if err := tlog.CheckRecord(hashes, p.Size, tree.Root, p.Index, tlog.RecordHash(leaf)); err != nil {
		return audit.Errorf(audit.CodeIntegrity, "the inclusion proof does not lead to the checkpoint's root: %w", err)
	}
	return nil
}

// CheckRow is a stored row's "inclusion" check against the checkpoint of
// size leaves (0: the latest): the row's record hash is the leaf integrated,
// and that leaf is proven in the checkpoint, whose signature verifies.
// covered is false when the row is not in that checkpoint (integrated after
// it, or not yet): there is nothing to check.
func CheckRow(ctx context.Context, s audit.TreeStore, verifier note.Verifier, e *audit.StoredEvent, size int64) (c audit.Check, covered bool, err error) {
	p, err := ProveInclusion(ctx, s, e.Seq, size)
	switch code := audit.ErrorCode(err); {
	case code == audit.CodeConflict || (size > 0 && code == audit.CodeInvalid):
		return audit.Check{}, false, nil
	case err != nil:
		return audit.Check{}, false, err
	}
	c = audit.Check{Name: audit.CheckInclusion, Expected: p.Leaf, Found: e.RecordHash}
	if p.Leaf != e.RecordHash {
		c.Note = fmt.Sprintf("leaf %d holds another record hash: the row changed after it was integrated", p.Index)
		return c, true, nil
	}
	tree, err := Open(p.Checkpoint, verifier)
	if err != nil {
		c.Note = "the checkpoint does not verify: " + err.Error()
		return c, true, nil
	}
	leaf, _ := hex.DecodeString(p.Leaf)
	if err := CheckInclusion(p, leaf, tree); err != nil {
		c.Note = err.Error()
		return c, true, nil
	}
	c.OK = true
	c.Note = fmt.Sprintf("leaf %d of the checkpoint of %d leaves", p.Index, p.Size)
	return c, true, nil
}
