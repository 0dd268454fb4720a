package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

// fuzzEvent is a valid event the seeds are built of.
const fuzzEvent = `{"timestamp":"2026-01-01T00:00:00Z","action":"auth.login","status":"success","organizationId":"org-a"}`

// ingestSeeds are bodies of every shape ingest reads: one event, an array,
// NDJSON lines, and broken forms of each.
var ingestSeeds = []string{
	fuzzEvent,
	"[" + fuzzEvent + "," + fuzzEvent + "]",
	fuzzEvent + "\n\n" + fuzzEvent + "\r\n",
	`[{"a":1}, 2, "x", null]`,
	`[`,
	`[]`,
	" \t\n",
	`{"timestamp":"2026-01-01T00:00:00Z","action":"a","status":"success"} trailing`,
	"\xff\xfe",
}

// FuzzSplitEvents holds splitEvents to its contract: NDJSON gives the
// non-blank lines, trimmed; a JSON array gives each element's bytes; anything
// else is one event, the body trimmed. Every payload is a part of the body,
// never empty, and a refusal says it is about the request body.
func FuzzSplitEvents(f *testing.F) {
	for _, s := range ingestSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		payloads, single, err := splitEvents(body, ndjson)
		trimmed := bytes.TrimSpace(body)
		if err != nil {
			if !strings.Contains(err.Error(), "request body") {
				t.Fatalf("refusal %q does not name the request body", err)
			}
			if len(trimmed) != 0 && (ndjson || trimmed[0] != '[') {
				t.Fatalf("refused a body that is lines or one event: %v", err)
			}
			return
		}
		if len(payloads) == 0 {
			t.Fatal("accepted a body of no events")
		}
		for i, p := range payloads {
			if len(p) == 0 || !bytes.Contains(body, p) {
				t.Fatalf("payload %d %q is empty or not part of the body", i, p)
			}
		}
		switch {
		case ndjson:
			var want [][]byte
			for _, line := range bytes.Split(body, []byte("\n")) {
				if line = bytes.TrimSpace(line); len(line) > 0 {
					want = append(want, line)
				}
			}
			if single || !equalPayloads(payloads, want) {
				t.Fatalf("NDJSON %q split into %q (single %v), want its non-blank lines %q", body, payloads, single, want)
			}
		case trimmed[0] == '[':
			var items []json.RawMessage
			if json.Unmarshal(trimmed, &items) != nil || len(items) != len(payloads) || single {
				t.Fatalf("array %q split into %d payloads (single %v)", body, len(payloads), single)
			}
			for i, p := range payloads {
				if !json.Valid(p) || !bytes.Equal(p, items[i]) {
					t.Fatalf("array element %d is %q, the array holds %q", i, p, items[i])
				}
			}
		default:
			if !single || len(payloads) != 1 || !bytes.Equal(payloads[0], trimmed) {
				t.Fatalf("one event %q split into %q (single %v)", body, payloads, single)
			}
		}
	})
}

func equalPayloads(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// memEvents is an in-memory audit.EventStore: it keeps what the pipeline
// stores, so that the fuzz target can compare it with what validation accepts.
type memEvents struct {
	mu      sync.Mutex
	records []audit.Record
	keys    map[string]bool
	dead    []audit.DeadLetter
}

func (m *memEvents) StoreBatch(_ context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]audit.StoreResult, len(b.Records))
	for i, r := range b.Records {
		k := r.IdempotencyKey + "|" + r.Time.String()
		if m.keys[k] {
			out[i].Duplicate = true
			continue
		}
		m.keys[k] = true
		m.records = append(m.records, r)
		out[i].Seq = int64(len(m.records))
	}
	m.dead = append(m.dead, b.DeadLetters...)
	return out, nil
}

var errNotKept = errors.New("memEvents keeps no history")

func (m *memEvents) GetEvent(context.Context, string) (audit.StoredEvent, error) {
	return audit.StoredEvent{}, errNotKept
}
func (m *memEvents) ListEvents(context.Context, int64, int) ([]audit.StoredEvent, error) {
	return nil, errNotKept
}
func (m *memEvents) ListDeadLetters(context.Context, int64, int) ([]audit.StoredDeadLetter, error) {
	return nil, errNotKept
}
func (m *memEvents) Ping(context.Context) error { return nil }
func (m *memEvents) Close() error               { return nil }

// processorIngester submits straight to a processor, without a batcher's
// goroutine: each fuzz execution gets a fresh store.
type processorIngester struct{ p *pipeline.Processor }

func (i *processorIngester) Submit(ctx context.Context, inputs []pipeline.Input) ([]pipeline.Outcome, error) {
	return i.p.Process(ctx, inputs)
}

// ingestContentTypes are the Content-Types the fuzz target picks from.
var ingestContentTypes = []string{"", "application/json", "application/x-ndjson", "application/jsonl; charset=utf-8",
	"text/plain", "application/json; charset=\"", "APPLICATION/NDJSON"}

// FuzzIngest posts any body under any Content-Type and Idempotency-Key to
// POST /v1/events over an in-memory store. Never a 5xx: a body that cannot be
// split into events is a 4xx whose JSON error names the body (or the header
// at fault); otherwise there is one result per event, the store holds exactly
// the events validation accepts, each refused one is a dead letter, and the
// counts add up.
func FuzzIngest(f *testing.F) {
	for i, s := range ingestSeeds {
		f.Add([]byte(s), uint8(i), "")
		f.Add([]byte(s), uint8(i+2), "key-1")
	}
	in := &processorIngester{}
	s := New(Options{Ingester: in, MaxBodyBytes: 64 << 10, MaxEvents: 100,
		Logger: slog.New(slog.DiscardHandler)})
	f.Cleanup(s.Close)
	rules := audit.DefaultRules()
	f.Fuzz(func(t *testing.T, body []byte, contentType uint8, key string) {
		store := &memEvents{keys: map[string]bool{}}
		in.p = pipeline.NewProcessor(store, pipeline.Config{Rules: rules})
		req := httptest.NewRequest("POST", "/v1/events", bytes.NewReader(body))
		ct := ingestContentTypes[int(contentType)%len(ingestContentTypes)]
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("Idempotency-Key", key)
		req = req.WithContext(context.WithValue(req.Context(), principalKey{},
			audit.Principal{ID: "fuzz", Role: audit.RoleAdmin, Organizations: []string{audit.AllOrganizations}}))
		rec := httptest.NewRecorder()
		s.ingest(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d: %s", rec.Code, rec.Body.String())
		}
		if rec.Code != http.StatusOK && rec.Code != http.StatusUnprocessableEntity {
			_, msg, err := decodeErrorBody(rec)
			if err != nil {
				t.Fatalf("%d without a JSON error: %v", rec.Code, err)
			}
			if m := strings.ToLower(msg); !strings.Contains(m, "body") && !strings.Contains(m, "content-type") &&
				!strings.Contains(m, "idempotency-key") && !strings.Contains(m, "events in one request") {
				t.Fatalf("%d: the message names neither the body nor the header at fault: %s", rec.Code, msg)
			}
			if len(store.records)+len(store.dead) != 0 {
				t.Fatalf("%d, yet the store changed", rec.Code)
			}
			return
		}
		var resp ingestResponse
		if err := json.NewDecoder(io.LimitReader(rec.Body, 1<<22)).Decode(&resp); err != nil {
			t.Fatalf("%d: the answer is not JSON: %v", rec.Code, err)
		}
		ndjson, err := ingestMediaType(ct)
		if err != nil {
			t.Fatalf("Content-Type %q is refused, yet the body was read: %v", ct, err)
		}
		payloads, single, err := splitEvents(body, ndjson)
		if err != nil || len(resp.Results) != len(payloads) {
			t.Fatalf("%d results for %d events (split: %v)", len(resp.Results), len(payloads), err)
		}
		if resp.Stored+resp.Duplicates+resp.Rejected != len(payloads) || resp.Stored != len(store.records) ||
			resp.Rejected != len(store.dead) {
			t.Fatalf("counts %d stored, %d duplicates, %d rejected for %d events; store holds %d records, %d dead letters",
				resp.Stored, resp.Duplicates, resp.Rejected, len(payloads), len(store.records), len(store.dead))
		}
		if want := http.StatusOK; single && resp.Rejected == 1 {
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("one refused event answered %d, want 422", rec.Code)
			}
		} else if rec.Code != want {
			t.Fatalf("answered %d, want %d", rec.Code, want)
		}
		stored := 0
		for i, o := range resp.Results {
			_, _, verr := audit.ParseEvent(payloads[i], rules, time.Now())
			switch o.Status {
			case pipeline.StatusStored:
				if verr != nil {
					t.Fatalf("event %d %q stored, though validation refuses it: %v", i, payloads[i], verr)
				}
				if !bytes.Equal(store.records[stored].Payload, payloads[i]) {
					t.Fatalf("event %d stored as %q, sent as %q", i, store.records[stored].Payload, payloads[i])
				}
				stored++
			case pipeline.StatusRejected:
				if o.Reason == "" || o.Message == "" {
					t.Fatalf("event %d rejected without a reason: %+v", i, o)
				}
			case pipeline.StatusDuplicate:
				if verr != nil {
					t.Fatalf("event %d a duplicate, though validation refuses it: %v", i, verr)
				}
			default:
				t.Fatalf("event %d: status %q", i, o.Status)
			}
			if verr != nil && o.Status != pipeline.StatusRejected {
				t.Fatalf("event %d %q: %s, though validation refuses it", i, payloads[i], o.Status)
			}
		}
	})
}
