package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/smartlogs/audit-worker/console"
)

type proofCase struct {
	Name        string         `json:"name"`
	RecordHash  string         `json:"recordHash"`
	Proof       inclusionProof `json:"proof"`
	VerifierKey string         `json:"verifierKey"`
	Want        bool           `json:"want"`
}

// TestBrowserProofCheckAgreesWithAnIndependentImplementation runs the
// console's proof check (console/assets/js/proof.js, Web Crypto) on proofs
// and signed checkpoints made by golang.org/x/mod's RFC 6962 and signed-note
// code: every leaf of trees of many shapes, each with a key of its own (so
// that keys whose base64 holds '+' or '/' come up), must be proven, and
// every kind of corruption refused.
func TestBrowserProofCheckAgreesWithAnIndependentImplementation(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var cases []proofCase
	for _, size := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100} {
		leaves := make([]string, size)
		for i := range leaves {
			h := sha256.Sum256([]byte(fmt.Sprint("row ", size, " ", i)))
			leaves[i] = hex.EncodeToString(h[:])
		}
		for _, index := range indexesOf(size) {
			signer, vkey := newSigner(t, fmt.Sprintf("audit.test/tree-%d", size))
			p, err := buildProof(leaves, int64(index), signer)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("leaf %d of %d", index, size)
			cases = append(cases, proofCase{Name: name, RecordHash: leaves[index], Proof: p, VerifierKey: vkey, Want: true})
			cases = append(cases, corruptions(t, name, leaves, index, p, vkey)...)
		}
	}
	tb := newTab(t)
	tb.do(chromedp.Navigate(srv.URL + console.Prefix))
	input, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	got := eval[[]struct {
		OK     bool            `json:"ok"`
		Checks json.RawMessage `json:"checks"`
	}](tb, `import('/console/js/proof.js').then((m) => Promise.all(`+string(input)+`.map((c) => m.checkProof(c.recordHash, c.proof, c.verifierKey))))`)
	if len(got) != len(cases) {
		t.Fatalf("%d results for %d cases", len(got), len(cases))
	}
	proven := 0
	for i, c := range cases {
		if got[i].OK != c.Want {
			t.Errorf("%s: the browser says ok=%v, want %v: %s", c.Name, got[i].OK, c.Want, got[i].Checks)
		}
		if c.Want {
			proven++
		}
	}
	t.Logf("%d proofs checked in the browser: %d proven, %d corruptions refused", len(cases), proven, len(cases)-proven)
}

// indexesOf are the leaves to prove in a tree of size: all of a small
// tree, the edges and the middle of a large one.
func indexesOf(size int) []int {
	if size <= 17 {
		out := make([]int, size)
		for i := range out {
			out[i] = i
		}
		return out
	}
	return []int{0, 1, size / 2, size - 2, size - 1}
}

func newSigner(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// corruptions are the ways a proof of leaf index can be wrong; each must fail.
func corruptions(t *testing.T, name string, leaves []string, index int, p inclusionProof, vkey string) []proofCase {
	t.Helper()
	bad := func(what string, edit func(*proofCase)) proofCase {
		c := proofCase{Name: name + ": " + what, RecordHash: leaves[index], Proof: p, VerifierKey: vkey}
		c.Proof.Hashes = append([]string(nil), p.Hashes...)
		edit(&c)
		c.Proof.Proof = tlogProof(c.Proof)
		return c
	}
	var out []proofCase
	other := leaves[(index+1)%len(leaves)]
	if len(leaves) > 1 {
		out = append(out,
			bad("another event's record hash", func(c *proofCase) { c.RecordHash = other }),
			bad("the proof of another leaf", func(c *proofCase) { c.Proof.Leaf, c.RecordHash = other, other }))
	}
	if len(p.Hashes) > 0 {
		out = append(out,
			bad("a hash of the path changed", func(c *proofCase) {
				h, _ := base64.StdEncoding.DecodeString(c.Proof.Hashes[0])
				h[31] ^= 1
				c.Proof.Hashes[0] = base64.StdEncoding.EncodeToString(h)
			}),
			bad("the path cut short", func(c *proofCase) { c.Proof.Hashes = c.Proof.Hashes[:len(c.Proof.Hashes)-1] }),
			bad("the path made longer", func(c *proofCase) { c.Proof.Hashes = append(c.Proof.Hashes, c.Proof.Hashes[0]) }))
	}
	if index+1 < len(leaves) {
		out = append(out, bad("the index moved", func(c *proofCase) { c.Proof.Index++ }))
	}
	_, stranger := newSigner(t, "audit.test/stranger")
	out = append(out,
		bad("a size other than the checkpoint's", func(c *proofCase) { c.Proof.Size++ }),
		bad("a checkpoint signed by another key", func(c *proofCase) { c.VerifierKey = stranger }),
		bad("the checkpoint's size edited after signing", func(c *proofCase) {
			c.Proof.Checkpoint = replaceLine(c.Proof.Checkpoint, 1, strconv.FormatInt(c.Proof.Size+1, 10))
			c.Proof.Size++
		}))
	return out
}

// replaceLine replaces line n (from 0) of text.
func replaceLine(text string, n int, with string) string {
	lines := strings.SplitN(text, "\n", n+2)
	lines[n] = with
	return strings.Join(lines, "\n")
}

// TestProofRoutesAgreeWithAnIndependentTree checks the worker's proof
// routes against their documented shapes: exactly the members index, size,
// leaf (the row's record hash, hex), hashes (base64), checkpoint (a signed
// note) and proof (the same as a C2SP tlog-proof, also served as text), and
// a verifier key "<name>+<hex id>+<base64>" that opens the checkpoint. The
// path and root must be those golang.org/x/mod's RFC 6962 code computes
// from the stored rows' record hashes in leaf order, and pass its check.
func TestProofRoutesAgreeWithAnIndependentTree(t *testing.T) {
	w := newWorker(t)
	var sent [][]byte
	for range 5 {
		sent = append(sent, w.event(orgA, nil))
	}
	res := w.send(sent...)
	if res.Stored != len(sent) {
		t.Fatalf("stored %d of %d", res.Stored, len(sent))
	}
	seq := res.Results[2].Seq
	w.inCheckpoint(seq)
	get := func(path, accept string) []byte {
		t.Helper()
		req, _ := http.NewRequest("GET", w.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+w.keys["auditor-a"])
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %s %v", path, resp.StatusCode, data, err)
		}
		return data
	}
	vkey := strings.TrimSpace(string(get("/v1/checkpoints/key", "")))
	if !regexp.MustCompile(`^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$`).MatchString(vkey) {
		t.Errorf("the key is %q, not <name>+<hex id>+<base64>", vkey)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("key %q: %v", vkey, err)
	}
	stored, err := w.store.GetEventBySeq(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	data := get(fmt.Sprintf("/v1/events/%d/proof", seq), "")
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(members)); !slices.Equal(keys, []string{"checkpoint", "hashes", "index", "leaf", "proof", "size"}) {
		t.Errorf("the proof's members are %q", keys)
	}
	var p inclusionProof
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Leaf != stored.RecordHash || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Leaf) {
		t.Errorf("the leaf is %q, the record hash %q", p.Leaf, stored.RecordHash)
	}
	n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		t.Fatalf("the checkpoint does not open with the key: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != checkpointOrigin || lines[1] != strconv.FormatInt(p.Size, 10) {
		t.Fatalf("checkpoint text %q for size %d", n.Text, p.Size)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		t.Fatalf("checkpoint root %q", lines[2])
	}
	var path tlog.RecordProof
	for _, h := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != 32 {
			t.Fatalf("hash %q is not base64 of 32 bytes", h)
		}
		path = append(path, tlog.Hash(b))
	}
	leaf, _ := hex.DecodeString(p.Leaf)
	if err := tlog.CheckRecord(path, p.Size, tlog.Hash(root), p.Index, tlog.RecordHash(leaf)); err != nil {
		t.Errorf("the proof does not check: %v", err)
	}

	// The same tree built apart: the record hashes the rows hold now, in
	// leaf order, hashed by x/mod.
	rows, err := w.store.LeafEvents(context.Background(), 0, int(p.Size))
	if err != nil || int64(len(rows)) != p.Size {
		t.Fatalf("%d leaf rows of %d: %v", len(rows), p.Size, err)
	}
	leaves := make([]string, len(rows))
	for i, r := range rows {
		if r.Event == nil {
			t.Fatalf("leaf %d has no row", i)
		}
		leaves[i] = r.Event.RecordHash
	}
	signer, _ := newSigner(t, checkpointOrigin)
	independent, err := buildProof(leaves, p.Index, signer)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(independent.Hashes, p.Hashes) {
		t.Errorf("the path is %q; x/mod's over the stored rows is %q", p.Hashes, independent.Hashes)
	}
	if got, want := lines[2], strings.Split(independent.Checkpoint, "\n")[2]; got != want {
		t.Errorf("the checkpoint's root is %s; x/mod's over the stored rows is %s", got, want)
	}

	// The tlog-proof text: header, index, the path, a blank line, the
	// checkpoint; the same when asked for as text/plain.
	if want := tlogProof(p); p.Proof != want {
		t.Errorf("the tlog-proof is\n%s\nwant\n%s", p.Proof, want)
	}
	if text := string(get(fmt.Sprintf("/v1/events/%d/proof", seq), "text/plain")); text != p.Proof {
		t.Errorf("the text/plain proof is\n%s\nthe JSON's\n%s", text, p.Proof)
	}
}
