package console_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// inclusionProof is the documented answer of GET /v1/events/{id}/proof.
type inclusionProof struct {
	Index      int64    `json:"index"`
	Size       int64    `json:"size"`
	Leaf       string   `json:"leaf"`       // the row's record hash, hex
	Hashes     []string `json:"hashes"`     // base64, leaf to root
	Checkpoint string   `json:"checkpoint"` // a signed note
	Proof      string   `json:"proof"`      // the same, as a C2SP tlog-proof
}

// tlogProof is p in the C2SP tlog-proof text format: the header line, the
// leaf's index, the audit path (one base64 hash a line), a blank line and
// the signed checkpoint.
func tlogProof(p inclusionProof) string {
	var b strings.Builder
	b.WriteString("c2sp.org/tlog-proof@v1\nindex " + strconv.FormatInt(p.Index, 10) + "\n")
	for _, h := range p.Hashes {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n" + p.Checkpoint)
	return b.String()
}

// treeLog builds the Merkle tree of the stored rows (in id order, each leaf
// the 32 bytes of a row's record hash) and signs checkpoints of it, with an
// implementation independent of the console's: golang.org/x/mod's.
type treeLog struct {
	signer note.Signer
	vkey   string
}

var testLog = newTreeLog()

func newTreeLog() *treeLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.test/console")
	if err != nil {
		panic(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	return &treeLog{signer: signer, vkey: vkey}
}

// prove returns the inclusion proof of the row seq in the tree of every row
// stored now, with a signed checkpoint of that tree.
func (l *treeLog) prove(ctx context.Context, store audit.EventReader, seq int64) (inclusionProof, error) {
	rows, err := store.SearchEvents(ctx, audit.EventQuery{Order: audit.OrderAsc, Limit: audit.MaxQueryLimit})
	if err != nil {
		return inclusionProof{}, err
	}
	slices.SortFunc(rows, func(a, b audit.StoredEvent) int { return int(a.Seq - b.Seq) })
	leaves := make([]string, len(rows))
	index := int64(-1)
	for i, r := range rows {
		leaves[i] = r.RecordHash
		if r.Seq == seq {
			index = int64(i)
		}
	}
	if index < 0 {
		return inclusionProof{}, fmt.Errorf("event %d is not stored", seq)
	}
	return buildProof(leaves, index, l.signer)
}

// buildProof is the proof of leaf index in the tree of leaves (record
// hashes, hex), with a checkpoint of that tree signed by signer.
func buildProof(leaves []string, index int64, signer note.Signer) (inclusionProof, error) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		data, err := hex.DecodeString(leaf)
		if err != nil {
			return inclusionProof{}, err
		}
		hs, err := tlog.StoredHashes(int64(i), data, reader)
		if err != nil {
			return inclusionProof{}, err
		}
		stored = append(stored, hs...)
	}
	size := int64(len(leaves))
	root, err := tlog.TreeHash(size, reader)
	if err != nil {
		return inclusionProof{}, err
	}
	rp, err := tlog.ProveRecord(size, index, reader)
	if err != nil {
		return inclusionProof{}, err
	}
	text := signer.Name() + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
	signed, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return inclusionProof{}, err
	}
	p := inclusionProof{Index: index, Size: size, Leaf: leaves[index], Checkpoint: string(signed)}
	for _, h := range rp {
		p.Hashes = append(p.Hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	p.Proof = tlogProof(p)
	return p, nil
}
