package transparency

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// fuzzKey is the checkpoint key of the fuzz targets, made once.
func fuzzKey(f *testing.F) (Key, string) {
	skey, _, err := note.GenerateKey(rand.Reader, "audit.example/log")
	if err != nil {
		f.Fatal(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		f.Fatal(err)
	}
	return k, skey
}

func fuzzTree(size int64) Tree {
	return Tree{Origin: "audit.example/log", Size: size, Root: tlog.Hash(sha256.Sum256([]byte(fmt.Sprint(size))))}
}

// FuzzParseTree holds ParseTree to the checkpoint body: what it accepts is
// an origin, a canonical non-negative size and a 32-byte root, whose own text
// is the body's first three lines; a refusal is CodeInvalid naming the
// checkpoint.
func FuzzParseTree(f *testing.F) {
	for _, s := range []string{fuzzTree(7).Text(), fuzzTree(0).Text() + "extension\n", "o\n007\nAAAA\n", "o\n-1\n\n",
		"o\n1\n" + strings.Repeat("A", 43) + "=\n", "\n1\nx\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := ParseTree(text)
		if err != nil {
			if audit.ErrorCode(err) != audit.CodeInvalid || !strings.Contains(err.Error(), "checkpoint") {
				t.Fatalf("refusal %q is not CodeInvalid naming the checkpoint", err)
			}
			return
		}
		if tr.Origin == "" || tr.Size < 0 || !strings.HasPrefix(text, tr.Text()) {
			t.Fatalf("%q read as %+v, whose text is %q", text, tr, tr.Text())
		}
	})
}

// FuzzParseKey holds ParseKey (security.checkpoint.signingKey, the key file)
// to note private keys: what it accepts signs checkpoints its own verifier
// opens, and its verifier key reads back as that verifier.
func FuzzParseKey(f *testing.F) {
	_, skey := fuzzKey(f)
	f.Add(skey)
	f.Add(" " + skey + "\n")
	f.Add(strings.Replace(skey, "PRIVATE+KEY", "PUBLIC+KEY", 1))
	f.Add("PRIVATE+KEY+name+00000000+AQ==")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if audit.ErrorCode(err) != audit.CodeInvalid || !strings.Contains(err.Error(), "key") {
				t.Fatalf("refusal %q is not CodeInvalid naming the key", err)
			}
			return
		}
		signed, err := Sign(fuzzTree(3), k.Signer)
		if err != nil {
			t.Fatalf("accepted key cannot sign: %v", err)
		}
		v, err := note.NewVerifier(k.VerifierKey)
		if err != nil || v.KeyHash() != k.Verifier.KeyHash() || v.Name() != k.Signer.Name() {
			t.Fatalf("verifier key %q does not read back as the key's verifier: %v", k.VerifierKey, err)
		}
		if tr, err := Open(signed, v); err != nil || tr != fuzzTree(3) {
			t.Fatalf("a checkpoint signed with the key does not open with its verifier: %+v, %v", tr, err)
		}
	})
}

// FuzzOpenCheckpoint holds Open to signed checkpoints: a note it accepts
// carries the key's valid signature over a body whose tree it returns; any
// change to a signed checkpoint's text or signature is refused with
// CodeIntegrity (or CodeInvalid for a signed body that is no checkpoint).
func FuzzOpenCheckpoint(f *testing.F) {
	k, _ := fuzzKey(f)
	signed := map[string]Tree{}
	for _, size := range []int64{0, 1, 1 << 40} {
		s, err := Sign(fuzzTree(size), k.Signer)
		if err != nil {
			f.Fatal(err)
		}
		signed[s] = fuzzTree(size)
		f.Add(s)
		f.Add(strings.Replace(s, "\n\n", "\nextension\n\n", 1))
	}
	other, _ := fuzzKey(f)
	s, _ := Sign(fuzzTree(5), other.Signer)
	f.Add(s)
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := Open(text, k.Verifier)
		if err != nil {
			if c := audit.ErrorCode(err); c != audit.CodeIntegrity && c != audit.CodeInvalid {
				t.Fatalf("refusal %q has code %q", err, c)
			}
			return
		}
		n, err := note.Open([]byte(text), note.VerifierList(k.Verifier))
		if err != nil || len(n.Sigs) == 0 || !strings.HasPrefix(n.Text, tr.Text()) {
			t.Fatalf("opened %q as %+v without a valid signature over it: %v", text, tr, err)
		}
		if want, ok := signed[text]; ok && tr != want {
			t.Fatalf("a signed checkpoint of %+v opened as %+v", want, tr)
		}
	})
}

// FuzzSplitNotes holds SplitNotes (the published checkpoints file, and the
// files of --checkpoint) to cutting without losing or adding a byte: the
// notes put together again are the file; and a file of signed checkpoints,
// one after the other, splits into exactly those checkpoints.
func FuzzSplitNotes(f *testing.F) {
	k, _ := fuzzKey(f)
	var file strings.Builder
	for _, size := range []int64{1, 2, 3} {
		s, err := Sign(fuzzTree(size), k.Signer)
		if err != nil {
			f.Fatal(err)
		}
		file.WriteString(s)
	}
	f.Add(file.String(), uint8(3))
	f.Add("o\n1\nx\n\n— a b\nno newline at the end", uint8(0))
	f.Add("\n\n\n— \n", uint8(0))
	f.Fuzz(func(t *testing.T, text string, signedNotes uint8) {
		notes := SplitNotes(text)
		if strings.Join(notes, "") != text {
			t.Fatalf("%q split into %q", text, notes)
		}
		for i, n := range notes {
			if n == "" {
				t.Fatalf("%q: note %d is empty", text, i)
			}
		}
		// The same count of real checkpoints, written one after the other.
		var file strings.Builder
		var want []string
		for i := range int64(signedNotes % 8) {
			s, err := Sign(fuzzTree(i+int64(len(text))), k.Signer)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, s)
			file.WriteString(s)
		}
		if got := SplitNotes(file.String()); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("%d signed checkpoints split into %d notes", len(want), len(got))
		}
	})
}

// FuzzCheckInclusion holds CheckInclusion to proofs: over a real tree, a
// proof it accepts for a leaf is the true proof of that leaf at that index
// (the same hashes), however its index, size or hashes were changed.
func FuzzCheckInclusion(f *testing.F) {
	const size = 13
	var hashes []tlog.Hash
	leaves := make([][]byte, size)
	for i := range int64(size) {
		leaves[i] = []byte(fmt.Sprint("leaf ", i))
		hs, err := tlog.StoredHashes(i, leaves[i], tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, x := range idx {
				out[j] = hashes[x]
			}
			return out, nil
		}))
		if err != nil {
			f.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = hashes[x]
		}
		return out, nil
	})
	root, err := tlog.TreeHash(size, reader)
	if err != nil {
		f.Fatal(err)
	}
	tree := Tree{Origin: "o", Size: size, Root: root}
	proofs := make([]InclusionProof, size)
	for i := range int64(size) {
		p, err := tlog.ProveRecord(size, i, reader)
		if err != nil {
			f.Fatal(err)
		}
		proofs[i] = InclusionProof{Index: i, Size: size, Hashes: encodeHashes(p)}
		f.Add(i, int64(size), strings.Join(proofs[i].Hashes, "\n"), leaves[i])
	}
	f.Add(int64(-1), int64(size), "", []byte("x"))
	f.Fuzz(func(t *testing.T, index, psize int64, joined string, leaf []byte) {
		p := InclusionProof{Index: index, Size: psize}
		if joined != "" {
			p.Hashes = strings.Split(joined, "\n")
		}
		err := CheckInclusion(p, leaf, tree)
		if err != nil {
			if audit.ErrorCode(err) != audit.CodeIntegrity {
				t.Fatalf("refusal %q is not CodeIntegrity", err)
			}
			return
		}
		if index < 0 || index >= size || !bytes.Equal(leaf, leaves[index]) {
			t.Fatalf("accepted leaf %q at index %d", leaf, index)
		}
		want := proofs[index].Hashes
		if len(p.Hashes) != len(want) {
			t.Fatalf("accepted %d hashes, the proof has %d", len(p.Hashes), len(want))
		}
		for i, h := range p.Hashes {
			a, _ := base64.StdEncoding.DecodeString(h)
			b, _ := base64.StdEncoding.DecodeString(want[i])
			if !bytes.Equal(a, b) {
				t.Fatalf("accepted hash %d %q, the proof's is %q", i, h, want[i])
			}
		}
	})
}
