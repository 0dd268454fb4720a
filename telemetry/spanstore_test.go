package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// storeTracer returns a tracer whose spans all land in a store of size n.
func storeTracer(t *testing.T, n int) (trace.Tracer, *SpanStore) {
	t.Helper()
	store := NewSpanStore(n)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(store))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("test"), store
}

// newTrace ends a root span and n-1 children of it and returns the trace id.
func newTrace(tr trace.Tracer, root string, n int) trace.TraceID {
	ctx, span := tr.Start(context.Background(), root)
	for i := 1; i < n; i++ {
		_, child := tr.Start(ctx, fmt.Sprintf("%s.child%d", root, i))
		child.End()
	}
	span.End()
	return span.SpanContext().TraceID()
}

func names(views []SpanView) []string {
	out := make([]string, len(views))
	for i, v := range views {
		out[i] = v.OperationName
	}
	return out
}

func TestSpanStoreEvictsOldestSpansFirst(t *testing.T) {
	tr, store := storeTracer(t, 5)
	a := newTrace(tr, "a", 3) // ends a.child1, a.child2, a
	b := newTrace(tr, "b", 2)
	c := newTrace(tr, "c", 2)
	if got := store.Len(); got != 5 {
		t.Fatalf("Len = %d, want the bound 5", got)
	}
	// Seven spans ended: the first two (a.child1, a.child2) made room.
	if got := names(store.Trace(a)); len(got) != 1 || got[0] != "a" {
		t.Fatalf("trace a = %v, want only its root left", got)
	}
	if got := store.Trace(b); len(got) != 2 {
		t.Fatalf("trace b has %d spans, want 2", len(got))
	}
	d := newTrace(tr, "d", 3)
	if got := store.Trace(a); got != nil {
		t.Fatalf("trace a = %v, want it gone", names(got))
	}
	if got := store.Trace(b); got != nil {
		t.Fatalf("trace b = %v, want it gone", names(got))
	}
	if got := len(store.Trace(c)); got != 2 {
		t.Fatalf("trace c has %d spans, want 2", got)
	}
	if got := len(store.Trace(d)); got != 3 {
		t.Fatalf("trace d has %d spans, want 3", got)
	}
	recent := store.Recent(10)
	if len(recent) != 2 || recent[0].TraceID != d.String() || recent[1].TraceID != c.String() {
		t.Fatalf("Recent = %+v, want d then c", recent)
	}
}

func TestSpanStoreRecentSummaries(t *testing.T) {
	tr, store := storeTracer(t, 100)
	first := newTrace(tr, "first", 1)
	ctx, root := tr.Start(context.Background(), "batch")
	_, failing := tr.Start(ctx, "store")
	failing.SetStatus(codes.Error, "down")
	failing.End()
	root.End()
	second := root.SpanContext().TraceID()

	recent := store.Recent(10)
	if len(recent) != 2 {
		t.Fatalf("Recent = %+v, want 2 traces", recent)
	}
	got := recent[0]
	if got.TraceID != second.String() || got.RootSpan != "batch" || got.SpanCount != 2 || !got.Error {
		t.Fatalf("newest summary = %+v, want trace %s rooted at batch, 2 spans, error", got, second)
	}
	if got.Duration < 0 || got.StartTime.IsZero() {
		t.Fatalf("summary times = %v, %v", got.StartTime, got.Duration)
	}
	if old := recent[1]; old.TraceID != first.String() || old.Error || old.SpanCount != 1 || old.RootSpan != "first" {
		t.Fatalf("older summary = %+v", old)
	}
	if got := store.Recent(1); len(got) != 1 || got[0].TraceID != second.String() {
		t.Fatalf("Recent(1) = %+v, want only the newest", got)
	}
	if got := store.Recent(0); len(got) != 0 {
		t.Fatalf("Recent(0) = %+v", got)
	}
}

func TestSpanViewShape(t *testing.T) {
	tr, store := storeTracer(t, 10)
	producer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx, root := tr.Start(context.Background(), "process_batch",
		trace.WithLinks(trace.Link{SpanContext: producer}),
		trace.WithAttributes(attribute.Int("audit.batch.size", 3), attribute.String("queue", "audit-events")))
	_, child := tr.Start(ctx, "store")
	child.RecordError(errors.New("connection refused"))
	child.SetStatus(codes.Error, "store failed")
	child.End()
	root.SetStatus(codes.Ok, "")
	root.End()

	views := store.Trace(root.SpanContext().TraceID())
	if got := names(views); len(got) != 2 || got[0] != "process_batch" || got[1] != "store" {
		t.Fatalf("spans = %v, want process_batch then store (by start time)", got)
	}
	raw, err := json.Marshal(views)
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	r, c := decoded[0], decoded[1]
	if r["traceId"] != root.SpanContext().TraceID().String() || len(r["traceId"].(string)) != 32 || len(r["spanId"].(string)) != 16 {
		t.Fatalf("ids = %v / %v", r["traceId"], r["spanId"])
	}
	if _, ok := r["parentSpanId"]; ok {
		t.Fatalf("root has parentSpanId %v", r["parentSpanId"])
	}
	if c["parentSpanId"] != r["spanId"] {
		t.Fatalf("child parentSpanId = %v, want %v", c["parentSpanId"], r["spanId"])
	}
	if r["component"] != "audit-worker" || r["operationName"] != "process_batch" {
		t.Fatalf("root = %v", r)
	}
	for _, key := range []string{"startTime", "endTime", "duration", "tags", "logs", "status", "links"} {
		if _, ok := r[key]; !ok {
			t.Fatalf("root lacks %q: %s", key, raw)
		}
	}
	if tags := r["tags"].(map[string]any); tags["audit.batch.size"] != float64(3) || tags["queue"] != "audit-events" {
		t.Fatalf("tags = %v", tags)
	}
	links := r["links"].([]any)
	if len(links) != 1 || links[0].(map[string]any)["traceId"] != producer.TraceID().String() ||
		links[0].(map[string]any)["spanId"] != producer.SpanID().String() {
		t.Fatalf("links = %v, want the producer %s/%s", links, producer.TraceID(), producer.SpanID())
	}
	if st := r["status"].(map[string]any); st["code"] != "OK" {
		t.Fatalf("root status = %v", st)
	}
	if st := c["status"].(map[string]any); st["code"] != "ERROR" || st["message"] != "store failed" {
		t.Fatalf("child status = %v", st)
	}
	logs := c["logs"].([]any)
	if len(logs) != 1 {
		t.Fatalf("child logs = %v", logs)
	}
	l := logs[0].(map[string]any)
	if l["message"] != "exception" || l["level"] != "error" || l["fields"].(map[string]any)["exception.message"] != "connection refused" {
		t.Fatalf("child log = %v", l)
	}
}

func TestSpanStoreUnknownTraceAndEmptyStore(t *testing.T) {
	_, store := storeTracer(t, 10)
	if got := store.Trace(trace.TraceID{9}); got != nil {
		t.Fatalf("Trace(unknown) = %v", got)
	}
	empty := &SpanStore{} // what a disabled Tracing hands out
	empty.OnEnd(nil)
	if empty.Len() != 0 || empty.Trace(trace.TraceID{1}) != nil || len(empty.Recent(10)) != 0 {
		t.Fatal("empty store is not empty")
	}
}

func TestSpanStoreConcurrentUse(t *testing.T) {
	const size, writers, perWriter = 200, 8, 300
	tr, store := storeTracer(t, size)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range perWriter {
				newTrace(tr, "w", 3)
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, s := range store.Recent(20) {
					id, err := trace.TraceIDFromHex(s.TraceID)
					if err != nil {
						t.Errorf("bad trace id %q", s.TraceID)
						return
					}
					for _, v := range store.Trace(id) {
						if v.TraceID != s.TraceID {
							t.Errorf("trace %s holds a span of %s", s.TraceID, v.TraceID)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if got := store.Len(); got != size {
		t.Fatalf("Len = %d, want %d", got, size)
	}
	total := 0
	for _, s := range store.Recent(size) {
		total += s.SpanCount
	}
	if total != size {
		t.Fatalf("the traces' span counts add up to %d, want every stored span (%d) in exactly one trace", total, size)
	}
}

func BenchmarkSpanStoreOnEnd(b *testing.B) {
	store := NewSpanStore(DefaultMaxSpans)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(store))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tp.Tracer("bench")
	b.ReportAllocs()
	for b.Loop() {
		newTrace(tr, "batch", 5)
	}
}
