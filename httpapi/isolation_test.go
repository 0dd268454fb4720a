package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/pipeline"
)

type refusalFixture struct {
	srv   *httptest.Server
	store audit.EventStore
	proc  *pipeline.Processor
	gen   *eventgen.Generator
}

func newRefusalFixture(t *testing.T, store audit.EventStore, maxWait time.Duration) *refusalFixture {
	hmacKey := []byte("test-secret-key-for-testing-purposes-only")
	proc := pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules(), HMACKey: hmacKey})
	batcher := pipeline.NewBatcher(proc, pipeline.BatcherConfig{MaxSize: 1000, MaxWait: maxWait})
	srv := httptest.NewServer(New(Options{Ingester: batcher, Store: store, Auth: adminAuth(testKey), MaxBodyBytes: 16 << 20}))
	t.Cleanup(func() {
		srv.Close()
		batcher.Close(context.Background())
	})
	g := eventgen.New(77)
	g.HMACKey = hmacKey
	return &refusalFixture{srv: srv, store: store, proc: proc, gen: g}
}

func (f *refusalFixture) refused() []byte {
	fields := f.gen.Fields()
	fields["principalId"] = storetest.RefusedPrincipal
	return f.gen.Seal(fields)
}

// postArray posts events as a JSON array and decodes the answer.
func (f *refusalFixture) postArray(t *testing.T, events [][]byte) (int, ingestResponse) {
	body := append([]byte{'['}, bytes.Join(events, []byte{','})...)
	body = append(body, ']')
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ingestResponse{}
	}
	defer resp.Body.Close()
	var out ingestResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Errorf("decode answer (status %d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// A request of 1,000 events, one of which the store refuses: 200, with that
// event rejected (store_refused) and the 999 others stored.
func TestIngestAnswersPerEventWhenTheStoreRefusesOne(t *testing.T) {
	for _, kind := range teststores.Refusing {
		t.Run(kind.Name, func(t *testing.T) {
			f := newRefusalFixture(t, kind.Open(t), 5*time.Millisecond)
			events := make([][]byte, 1000)
			for i := range events {
				events[i] = f.gen.Valid()
			}
			const bad = 4
			events[bad] = f.refused()
			code, resp := f.postArray(t, events)
			if code != http.StatusOK || resp.Stored != 999 || resp.Rejected != 1 || len(resp.Results) != 1000 {
				t.Fatalf("status %d, %d stored, %d rejected, %d results; want 200, 999, 1, 1000",
					code, resp.Stored, resp.Rejected, len(resp.Results))
			}
			if r := resp.Results[bad]; r.Status != pipeline.StatusRejected || r.Reason != audit.ReasonStoreRefused ||
				!strings.Contains(r.Message, storetest.RefusalMessage) {
				t.Errorf("refused event's result %+v, want rejected with store_refused and the database's reason", r)
			}
			dls, err := f.store.ListDeadLetters(t.Context(), 0, 10)
			if err != nil || len(dls) != 1 || dls[0].Reason != audit.ReasonStoreRefused || string(dls[0].Payload) != string(events[bad]) {
				t.Fatalf("dead letters %+v (%v), want the refused event with its exact bytes", dls, err)
			}
		})
	}
}

// Requests whose events share a batch with a refused event are not failed by
// it: every request gets 200, and only the refused event is rejected.
func TestIngestRefusedEventDoesNotFailOtherRequests(t *testing.T) {
	for _, kind := range teststores.Refusing {
		t.Run(kind.Name, func(t *testing.T) {
			f := newRefusalFixture(t, kind.Open(t), 300*time.Millisecond)
			const requests, each, badRequest = 10, 50, 6
			bodies := make([][][]byte, requests)
			for r := range bodies {
				for range each {
					bodies[r] = append(bodies[r], f.gen.Valid())
				}
			}
			bodies[badRequest][17] = f.refused()
			codes := make([]int, requests)
			answers := make([]ingestResponse, requests)
			var wg sync.WaitGroup
			for r := range bodies {
				wg.Go(func() { codes[r], answers[r] = f.postArray(t, bodies[r]) })
			}
			wg.Wait()
			for r := range bodies {
				wantStored, wantRejected := each, 0
				if r == badRequest {
					wantStored, wantRejected = each-1, 1
				}
				if codes[r] != http.StatusOK || answers[r].Stored != wantStored || answers[r].Rejected != wantRejected {
					t.Errorf("request %d: status %d, %d stored, %d rejected; want 200, %d, %d",
						r, codes[r], answers[r].Stored, answers[r].Rejected, wantStored, wantRejected)
				}
			}
			if got := answers[badRequest].Results[17]; got.Reason != audit.ReasonStoreRefused {
				t.Errorf("refused event's result %+v, want store_refused", got)
			}
			st := f.proc.Stats()
			t.Logf("%d requests in %d batches", requests, st.Batches)
			if st.Batches >= requests {
				t.Errorf("%d batches for %d concurrent requests: none shared a batch with the refused event", st.Batches, requests)
			}
		})
	}
}
