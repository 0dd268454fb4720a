package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/sqlite"
)

const testKey = "test-api-key-0123456789"

type fixture struct {
	srv   *httptest.Server
	store *sqlite.Store
	gen   *eventgen.Generator
}

func newFixture(t *testing.T, maxBody int64) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	hmacKey := []byte("test-secret-key-for-testing-purposes-only")
	batcher := pipeline.NewBatcher(pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules(), HMACKey: hmacKey}), pipeline.BatcherConfig{})
	srv := httptest.NewServer(New(Options{Ingester: batcher, Store: store, Auth: adminAuth("another-key-abcdefghij", testKey), MaxBodyBytes: maxBody}))
	t.Cleanup(func() {
		srv.Close()
		batcher.Close(context.Background())
		store.Close()
	})
	g := eventgen.New(42)
	g.HMACKey = hmacKey
	return &fixture{srv: srv, store: store, gen: g}
}

func (f *fixture) post(t *testing.T, body []byte, header map[string]string) (*http.Response, ingestResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out ingestResponse
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func (f *fixture) count(t *testing.T) int {
	t.Helper()
	events, err := f.store.ListEvents(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return len(events)
}

func TestIngestSingleArrayAndNDJSON(t *testing.T) {
	f := newFixture(t, 1<<20)

	resp, out := f.post(t, f.gen.Valid(), nil)
	if resp.StatusCode != http.StatusOK || out.Stored != 1 || out.Results[0].Seq == 0 {
		t.Fatalf("single: %s %+v", resp.Status, out)
	}

	invalid, code := f.gen.Invalid()
	array := []byte("[" + string(f.gen.Valid()) + "," + string(invalid) + "," + string(f.gen.Tampered()) + "]")
	resp, out = f.post(t, array, nil)
	if resp.StatusCode != http.StatusOK || out.Stored != 1 || out.Rejected != 2 {
		t.Fatalf("array: %s %+v", resp.Status, out)
	}
	if r := out.Results[1]; r.Reason != audit.ReasonValidation || r.Errors[0].Code != code || r.Errors[0].Field == "" {
		t.Errorf("invalid event result = %+v, want code %s with its field", r, code)
	}
	if r := out.Results[2]; r.Reason != audit.ReasonIntegrityViolation {
		t.Errorf("tampered event result = %+v", r)
	}

	ndjson := append(append(f.gen.Valid(), '\n', '\n'), f.gen.Valid()...)
	resp, out = f.post(t, ndjson, map[string]string{"Content-Type": "application/x-ndjson"})
	if resp.StatusCode != http.StatusOK || out.Stored != 2 {
		t.Fatalf("ndjson: %s %+v", resp.Status, out)
	}
	if n := f.count(t); n != 4 {
		t.Errorf("%d rows stored, want 4", n)
	}
	dead, err := f.store.ListDeadLetters(context.Background(), 0, 100)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters: %d, %v; want 2", len(dead), err)
	}
}

func TestIngestIdempotencyKey(t *testing.T) {
	f := newFixture(t, 1<<20)
	body := []byte("[" + string(f.gen.Valid()) + "," + string(f.gen.Valid()) + "]")
	hdr := map[string]string{"Idempotency-Key": "order-42"}
	_, first := f.post(t, body, hdr)
	_, second := f.post(t, body, hdr)
	if first.Stored != 2 || second.Duplicates != 2 || second.Stored != 0 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	if first.Results[1].Key != "http:order-42/1" {
		t.Errorf("key = %q", first.Results[1].Key)
	}
	// Without a header, the same bytes sent twice are one row too (content key).
	single := f.gen.Valid()
	f.post(t, single, nil)
	if _, again := f.post(t, single, nil); again.Duplicates != 1 {
		t.Errorf("content-keyed resend: %+v", again)
	}
	if n := f.count(t); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	if resp, _ := f.post(t, single, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("256-character key: %s", resp.Status)
	}
}

func TestIngestRefusals(t *testing.T) {
	f := newFixture(t, 4096)

	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", bytes.NewReader(f.gen.Valid()))
	for _, auth := range []string{"", "Bearer ", "Bearer wrong-key-wrong-key", "Basic " + testKey, "Bearer " + testKey + "x"} {
		req.Header.Set("Authorization", auth)
		req.Body = http.NoBody
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %s", auth, resp.Status)
		}
	}

	if resp, _ := f.post(t, bytes.Repeat([]byte(" "), 5000), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %s", resp.Status)
	}
	if resp, _ := f.post(t, []byte("  "), nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty body: %s", resp.Status)
	}
	// Garbage is still an event someone sent: it is refused and kept as a dead letter.
	resp, out := f.post(t, []byte("definitely not json"), nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || out.Rejected != 1 || !strings.Contains(out.Results[0].Message, "not valid JSON") {
		t.Errorf("garbage: %s %+v", resp.Status, out)
	}
	if n := f.count(t); n != 0 {
		t.Errorf("%d rows stored, want 0", n)
	}
}
