package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
)

const tracingKey = "tracing-test-key-0123456789"

// tracedServer is a server whose processor traces into rec and a span store.
type tracedServer struct {
	srv   *httptest.Server
	rec   *tracetest.SpanRecorder
	spans *telemetry.SpanStore
}

func newTracedServer(t *testing.T, opts TracingOptions, withStore bool) *tracedServer {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	ts := &tracedServer{rec: tracetest.NewSpanRecorder(), spans: telemetry.NewSpanStore(100)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(ts.rec), sdktrace.WithSpanProcessor(ts.spans))
	proc := pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules()})
	proc.Instrument(pipeline.Instruments{Tracer: tp.Tracer("pipeline")})
	batcher := pipeline.NewBatcher(proc, pipeline.BatcherConfig{})
	if withStore {
		opts.Store = ts.spans
	}
	ts.srv = httptest.NewServer(New(Options{Ingester: batcher, Store: store, Auth: adminAuth(tracingKey),
		MaxBodyBytes: 1 << 20, Tracing: opts}))
	t.Cleanup(func() {
		ts.srv.Close()
		batcher.Close(context.Background())
		store.Close()
	})
	return ts
}

func (ts *tracedServer) get(t *testing.T, path string, withKey bool) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.srv.URL+path, nil)
	if withKey {
		req.Header.Set("Authorization", "Bearer "+tracingKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (ts *tracedServer) ingest(t *testing.T, body []byte, traceparent, tracestate string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.srv.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tracingKey)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	if tracestate != "" {
		req.Header.Set("tracestate", tracestate)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %s", resp.Status)
	}
}

func (ts *tracedServer) batchSpans() []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range ts.rec.Ended() {
		if s.Name() == "process_batch" {
			out = append(out, s)
		}
	}
	return out
}

func TestIngestTraceparentBecomesLink(t *testing.T) {
	ts := newTracedServer(t, TracingOptions{}, true)
	gen := eventgen.New(3)
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	body := []byte("[" + string(gen.Valid()) + "," + string(gen.Valid()) + "]")
	ts.ingest(t, body, "00-"+traceID+"-"+spanID+"-01", "vendor=value")

	batches := ts.batchSpans()
	if len(batches) != 1 {
		t.Fatalf("%d process_batch spans, want 1", len(batches))
	}
	links := batches[0].Links() // both events carry the request's context: one link
	if len(links) != 1 {
		t.Fatalf("links = %+v, want one", links)
	}
	sc := links[0].SpanContext
	if sc.TraceID().String() != traceID || sc.SpanID().String() != spanID || !sc.IsRemote() || sc.TraceState().Get("vendor") != "value" {
		t.Fatalf("link = %v (tracestate %q), want the caller's span with its tracestate", sc, sc.TraceState().String())
	}

	// Without the header, or with a malformed one, the batch links to nothing.
	ts.ingest(t, gen.Valid(), "", "")
	ts.ingest(t, gen.Valid(), "00-not-a-trace-01", "")
	for _, b := range ts.batchSpans()[1:] {
		if len(b.Links()) != 0 {
			t.Fatalf("links = %+v, want none", b.Links())
		}
	}
}

func TestTracesRoute(t *testing.T) {
	ts := newTracedServer(t, TracingOptions{}, true)
	ts.ingest(t, eventgen.New(4).Valid(), "", "")
	batch := ts.batchSpans()[0]
	id := batch.SpanContext().TraceID().String()

	if code, _ := ts.get(t, "/observability/traces?traceId="+id, false); code != http.StatusUnauthorized {
		t.Fatalf("without key: %d, want 401", code)
	}
	code, body := ts.get(t, "/observability/traces?traceId="+strings.ToUpper(id), true)
	if code != http.StatusOK {
		t.Fatalf("known trace: %d %s", code, body)
	}
	var spans []telemetry.SpanView
	if err := json.Unmarshal(body, &spans); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	got := map[string]bool{}
	for _, s := range spans {
		got[s.OperationName] = true
		if s.TraceID != id || s.Component != "audit-worker" {
			t.Fatalf("span %+v", s)
		}
	}
	for _, name := range []string{"process_batch", "validate", "verify", "store"} {
		if !got[name] {
			t.Fatalf("trace lacks %s: %s", name, body)
		}
	}

	for _, bad := range []string{"xyz", id[:31], strings.Repeat("0", 32), id + "0"} {
		if code, body := ts.get(t, "/observability/traces?traceId="+bad, true); code != http.StatusBadRequest {
			t.Fatalf("traceId=%s: %d %s, want 400", bad, code, body)
		}
	}
	code, body = ts.get(t, "/observability/traces?traceId="+trace.TraceID{0xab}.String(), true)
	if code != http.StatusNotFound || !strings.Contains(string(body), `"not_found"`) {
		t.Fatalf("unknown trace: %d %s, want 404 JSON", code, body)
	}

	code, body = ts.get(t, "/observability/traces", true)
	var recent struct {
		Traces []telemetry.TraceSummary `json:"traces"`
		Limit  int                      `json:"limit"`
	}
	if err := json.Unmarshal(body, &recent); code != http.StatusOK || err != nil {
		t.Fatalf("recent: %d %s (%v)", code, body, err)
	}
	if len(recent.Traces) != 1 || recent.Traces[0].TraceID != id || recent.Traces[0].RootSpan != "process_batch" ||
		recent.Traces[0].SpanCount != 4 || recent.Limit != defaultRecentTraces {
		t.Fatalf("recent = %+v", recent)
	}
	if _, body = ts.get(t, "/observability/traces?limit=100000", true); !strings.Contains(string(body), `"limit":1000`) {
		t.Fatalf("limit not bounded: %s", body)
	}
	for _, bad := range []string{"0", "-1", "ten"} {
		if code, _ := ts.get(t, "/observability/traces?limit="+bad, true); code != http.StatusBadRequest {
			t.Fatalf("limit=%s: %d, want 400", bad, code)
		}
	}
}

func TestTracesRouteWithoutStore(t *testing.T) {
	ts := newTracedServer(t, TracingOptions{}, false)
	code, body := ts.get(t, "/observability/traces", true)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "not initialized") {
		t.Fatalf("no store: %d %s, want 503 JSON", code, body)
	}
}

func TestProfilingRoute(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		ts := newTracedServer(t, TracingOptions{EnablePprof: enabled}, true)
		if code, _ := ts.get(t, "/observability/profiling", false); code != http.StatusUnauthorized {
			t.Fatalf("without key: %d, want 401", code)
		}
		code, body := ts.get(t, "/observability/profiling", true)
		var rep profilingReport
		if err := json.Unmarshal(body, &rep); code != http.StatusOK || err != nil {
			t.Fatalf("profiling: %d %s (%v)", code, body, err)
		}
		if rep.Goroutines < 1 || rep.GOMAXPROCS < 1 || rep.NumCPU < 1 || rep.Memory.SysBytes == 0 ||
			rep.Memory.HeapAllocBytes == 0 || rep.UptimeSeconds < 0 || rep.GoVersion == "" {
			t.Fatalf("profiling report = %s", body)
		}
		if rep.Pprof.Enabled != enabled || (enabled && rep.Pprof.Path != "/debug/pprof/") {
			t.Fatalf("pprof = %+v, want enabled=%v", rep.Pprof, enabled)
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
			code, body := ts.get(t, path, true)
			switch {
			case enabled && code != http.StatusOK:
				t.Fatalf("pprof on, %s: %d %.200s", path, code, body)
			case !enabled && code != http.StatusNotFound:
				t.Fatalf("pprof off, %s: %d, want 404", path, code)
			}
			if code, _ := ts.get(t, path, false); enabled && code != http.StatusUnauthorized {
				t.Fatalf("pprof on, %s without key: %d, want 401", path, code)
			}
		}
	}
}

func TestRecentPausePercentiles(t *testing.T) {
	var m runtime.MemStats
	m.NumGC = 300 // the ring has wrapped: all 256 slots are recent
	for i := range m.PauseNs {
		m.PauseNs[i] = uint64(i+1) * 1e6 // 1 ms ... 256 ms
	}
	got := recentPauses(&m)
	if got.Samples != 256 || got.MaxMs != 256 || got.P50Ms != 129 || got.P99Ms != 253 {
		t.Fatalf("pauses = %+v", got)
	}
	m.NumGC = 2
	if got := recentPauses(&m); got.Samples != 2 || got.MaxMs != 2 {
		t.Fatalf("two pauses = %+v", got)
	}
}
