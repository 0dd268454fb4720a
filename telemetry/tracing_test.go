package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"go.opentelemetry.io/otel/trace"
)

// collector is an OTLP/HTTP endpoint that keeps what it receives.
type collector struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []*collectortrace.ExportTraceServiceRequest
	paths    []string
	headers  []http.Header
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector got %s %s (%s): %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			t.Errorf("collector: decode protobuf: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.requests = append(c.requests, req)
		c.paths = append(c.paths, r.URL.Path)
		c.headers = append(c.headers, r.Header.Clone())
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// spans returns the names of the exported spans and the service names of their resources.
func (c *collector) spans() (names, services []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.requests {
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					services = append(services, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
				}
			}
		}
	}
	return names, services
}

func newTestTracing(t *testing.T, cfg TracingConfig) *Tracing {
	t.Helper()
	tr, err := NewTracing(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func shutdown(t *testing.T, tr *Tracing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTracingKeepsSpansInMemoryWithoutExporter(t *testing.T) {
	tr := newTestTracing(t, TracingConfig{Enabled: true, SampleRate: 1})
	id := newTrace(tr.Tracer("test"), "batch", 3)
	if !tr.Enabled() {
		t.Fatal("Enabled() = false")
	}
	if got := len(tr.Store().Trace(id)); got != 3 {
		t.Fatalf("store holds %d spans of the trace, want 3", got)
	}
	shutdown(t, tr)
}

func TestTracingExportsOverOTLP(t *testing.T) {
	c := newCollector(t)
	tr := newTestTracing(t, TracingConfig{
		Enabled: true, ServiceName: "audit-worker-test", SampleRate: 1,
		OTLPEndpoint: c.srv.URL, Headers: map[string]string{"X-Api-Key": "secret"},
	})
	id := newTrace(tr.Tracer("test"), "batch", 2)
	shutdown(t, tr) // flushes the batch processor

	names, services := c.spans()
	if len(names) != 2 || !slices.Contains(names, "batch") || !slices.Contains(names, "batch.child1") {
		t.Fatalf("exported spans = %v, want batch and batch.child1", names)
	}
	if len(services) == 0 || services[0] != "audit-worker-test" {
		t.Fatalf("service.name = %v", services)
	}
	c.mu.Lock()
	path, key := c.paths[0], c.headers[0].Get("X-Api-Key")
	c.mu.Unlock()
	if path != "/v1/traces" || key != "secret" {
		t.Fatalf("export went to %q with key %q, want /v1/traces with the configured header", path, key)
	}
	if got := len(tr.Store().Trace(id)); got != 2 {
		t.Fatalf("store holds %d spans, want 2", got)
	}
}

func TestTracingSampleRateZeroExportsNothing(t *testing.T) {
	c := newCollector(t)
	tr := newTestTracing(t, TracingConfig{Enabled: true, SampleRate: 0, OTLPEndpoint: c.srv.URL + "/v1/traces"})
	var ids []trace.TraceID
	for range 20 {
		ids = append(ids, newTrace(tr.Tracer("test"), "batch", 2))
	}
	shutdown(t, tr)
	if names, _ := c.spans(); len(names) != 0 {
		t.Fatalf("exported %d spans with sample rate 0", len(names))
	}
	for _, id := range ids {
		if got := len(tr.Store().Trace(id)); got != 2 {
			t.Fatalf("store holds %d spans of %s, want 2 (the store keeps unsampled traces)", got, id)
		}
	}
}

func TestSampledProcessorDecidesByTraceID(t *testing.T) {
	half := newSampledProcessor(nil, 0.5)
	low := trace.TraceID{8: 0x00}                     // low 64 bits small: below half
	high := trace.TraceID{8: 0xff, 9: 0xff, 15: 0xff} // low 64 bits large: above half
	if !half.sampled(low) || half.sampled(high) {
		t.Fatalf("rate 0.5: sampled(low)=%v sampled(high)=%v, want true/false", half.sampled(low), half.sampled(high))
	}
	if all := newSampledProcessor(nil, 1); !all.sampled(high) {
		t.Fatal("rate 1 must export every trace")
	}
	if none := newSampledProcessor(nil, 0); none.sampled(low) {
		t.Fatal("rate 0 must export no trace")
	}
}

func TestTracingDisabled(t *testing.T) {
	tr := newTestTracing(t, TracingConfig{Enabled: false, OTLPEndpoint: "http://127.0.0.1:1"})
	_, span := tr.Tracer("test").Start(context.Background(), "batch")
	if tr.Enabled() || span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatal("a disabled tracer made a real span")
	}
	span.End()
	if tr.Store() == nil || tr.Store().Len() != 0 || len(tr.Store().Recent(10)) != 0 {
		t.Fatal("a disabled tracing's store is not empty")
	}
	shutdown(t, tr)
}

func TestTracingRejectsBadConfig(t *testing.T) {
	for _, cfg := range []TracingConfig{
		{Enabled: true, SampleRate: 1.5},
		{Enabled: true, SampleRate: -0.1},
		{Enabled: true, SampleRate: 1, OTLPEndpoint: "collector:4318"},
		{Enabled: true, SampleRate: 1, OTLPEndpoint: "grpc://collector:4317"},
	} {
		if _, err := NewTracing(context.Background(), cfg); err == nil {
			t.Errorf("NewTracing(%+v) accepted it", cfg)
		}
	}
}

func TestTracingLogsFailedExports(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest) // not retried by the exporter
	}))
	defer down.Close()
	var logged bytes.Buffer
	tr := newTestTracing(t, TracingConfig{Enabled: true, SampleRate: 1, OTLPEndpoint: down.URL,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	newTrace(tr.Tracer("test"), "batch", 1)
	shutdown(t, tr)
	if !strings.Contains(logged.String(), "trace export failed") {
		t.Fatalf("log = %q, want the failed export", logged.String())
	}
}
