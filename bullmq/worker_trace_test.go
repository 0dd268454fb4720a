package bullmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recordingObserver records the calls a Worker makes.
type recordingObserver struct {
	mu      sync.Mutex
	acked   []int
	ackTook []time.Duration
	retried []error
}

func (o *recordingObserver) BatchAcked(jobs int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acked = append(o.acked, jobs)
	o.ackTook = append(o.ackTook, d)
}

func (o *recordingObserver) BatchRetried(jobs int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retried = append(o.retried, fmt.Errorf("%d jobs: %w", jobs, err))
}

// setTraceMeta gives a job the "tm" option a bullmq-otel producer writes.
func (e *env) setTraceMeta(q *Queue, id, traceID, spanID string) {
	e.t.Helper()
	raw := `{"tm":` + tmOf(traceID, spanID) + `,"attempts":1}`
	if err := e.rdb.HSet(context.Background(), q.Keys().Job(id), "opts", raw).Err(); err != nil {
		e.t.Fatal(err)
	}
}

func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(spans))
	return nil
}

func TestWorkerTracesBatches(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("traced")
	ids := addJobs(t, q, 4, JobOptions{Attempts: 1})
	const traceA, traceB = "0af7651916cd43dd8448eb211c80319c", "11111111111111111111111111111111"
	e.setTraceMeta(q, ids[0], traceA, "b7ad6b7169203331")
	e.setTraceMeta(q, ids[1], traceA, "b7ad6b7169203332") // same trace: one link
	e.setTraceMeta(q, ids[2], traceB, "2222222222222222")

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	obs := &recordingObserver{}
	var handled sync.WaitGroup
	handled.Add(1)
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		defer handled.Done()
		_, span := tracer.Start(ctx, "handle")
		span.End()
		return make([]Result, len(jobs)), nil
	})
	w := NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{BatchSize: 10, Tracer: tracer, Observer: obs,
		DrainDelay: 50 * time.Millisecond})
	stop := runWorker(t, w)
	handled.Wait()
	eventually(t, "the ack span", func() bool { return len(rec.Ended()) >= 3 })
	stop()

	spans := rec.Ended()
	batch, handle, ack := spanNamed(t, spans, "bullmq.batch"), spanNamed(t, spans, "handle"), spanNamed(t, spans, "ack")
	if batch.Parent().IsValid() || batch.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("batch span: parent %v, kind %v; want a consumer root", batch.Parent(), batch.SpanKind())
	}
	for _, child := range []sdktrace.ReadOnlySpan{handle, ack} {
		if child.Parent().SpanID() != batch.SpanContext().SpanID() || child.SpanContext().TraceID() != batch.SpanContext().TraceID() {
			t.Fatalf("%s is not a child of bullmq.batch", child.Name())
		}
	}
	links := batch.Links()
	if len(links) != 2 || links[0].SpanContext.TraceID().String() != traceA || links[0].SpanContext.SpanID().String() != "b7ad6b7169203331" ||
		links[1].SpanContext.TraceID().String() != traceB {
		t.Fatalf("links = %+v, want the first span of each producer trace", links)
	}
	attrs := map[string]any{}
	for _, kv := range batch.Attributes() {
		attrs[string(kv.Key)] = kv.Value.AsInterface()
	}
	if attrs["bullmq.queue"] != "traced" || attrs["bullmq.jobs"] != int64(4) {
		t.Fatalf("batch attributes = %v", attrs)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.acked) != 1 || obs.acked[0] != 4 || obs.ackTook[0] <= 0 || len(obs.retried) != 0 {
		t.Fatalf("observer: acked %v in %v, retried %v", obs.acked, obs.ackTook, obs.retried)
	}
	if n := e.count(q.Keys().Key("completed")); n != 4 {
		t.Fatalf("%d jobs completed, want 4", n)
	}
}

func TestWorkerObservesRetriedBatch(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("retried")
	addJobs(t, q, 2, JobOptions{Attempts: 1})
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	obs := &recordingObserver{}
	storeDown := errors.New("store down")
	var calls int
	var mu sync.Mutex
	h := HandlerFunc(func(ctx context.Context, jobs []*Job) ([]Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			return nil, storeDown
		}
		return make([]Result, len(jobs)), nil
	})
	w := NewWorker(e.consumer(q, ConsumerOptions{}), h, WorkerOptions{BatchSize: 10, Tracer: tracer, Observer: obs,
		DrainDelay: 50 * time.Millisecond, RetryBackoffMin: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond})
	stop := runWorker(t, w)
	eventually(t, "the batch span", func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "bullmq.batch" {
				return true
			}
		}
		return false
	})
	stop()

	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.retried) != 1 || !errors.Is(obs.retried[0], storeDown) || obs.retried[0].Error() != "2 jobs: store down" {
		t.Fatalf("BatchRetried calls = %v, want one for the 2 jobs with the handler's error", obs.retried)
	}
	if len(obs.acked) != 1 || obs.acked[0] != 2 {
		t.Fatalf("BatchAcked calls = %v, want one of 2 jobs", obs.acked)
	}
	batch := spanNamed(t, rec.Ended(), "bullmq.batch")
	if ev := batch.Events(); len(ev) != 1 || ev[0].Name != "batch offered again" {
		t.Fatalf("batch events = %+v", ev)
	}
}

func TestBatchSpanLinksAreCapped(t *testing.T) {
	e := newEnv(t)
	q := e.realQueue("links")
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	w := NewWorker(e.consumer(q, ConsumerOptions{}), nil, WorkerOptions{Tracer: tracer})
	jobs := make([]*Job, 300)
	for i := range jobs {
		jobs[i] = &Job{ID: fmt.Sprint(i), traceCtx: decodeTraceMeta(tmOf(fmt.Sprintf("%032x", i+1), "00000000000000aa"))}
	}
	_, span := w.startBatchSpan(context.Background(), jobs)
	span.End()
	if got := len(rec.Ended()[0].Links()); got != maxBatchLinks {
		t.Fatalf("%d links, want the cap %d", got, maxBatchLinks)
	}
}

func TestWorkerWithoutTracerMakesNoSpans(t *testing.T) {
	w := &Worker{}
	ctx := context.Background()
	got, bt := w.traceBatch(ctx, []*Job{{ID: "1"}})
	if got != ctx || bt.span != nil {
		t.Fatal("a worker without a tracer started a span")
	}
	acked := false
	bt.acknowledge(ctx, nil, func() { acked = true })
	bt.retried(nil, 1, errors.New("x"))
	bt.givenBack(errors.New("x"))
	bt.end()
	if !acked {
		t.Fatal("acknowledge did not run the acknowledgement")
	}
}
