package console_test

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
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
