package bullmq

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// WorkerObserver is told how batches end: telemetry counts and times them.
// Calls are synchronous on the batch's goroutine and must be quick.
type WorkerObserver interface {
	// BatchAcked: a batch of jobs was acknowledged; d is the time the
	// completion/failure script calls took.
	BatchAcked(jobs int, d time.Duration)
	// BatchRetried: the handler failed on a batch (err) and the worker, still
	// holding its jobs, offers it again.
	BatchRetried(jobs int, err error)
}

// maxBatchLinks bounds the producer links of one batch span: a batch of a
// thousand jobs from one producer trace would otherwise carry a thousand.
const maxBatchLinks = 128

// Span names of the worker.
const (
	spanBatch = "bullmq.batch"
	spanAck   = "ack"
)

// startBatchSpan starts the span of one batch, linked to the producers' spans
// (one link per distinct trace, at most maxBatchLinks).
func (w *Worker) startBatchSpan(ctx context.Context, jobs []*Job) (context.Context, trace.Span) {
	var links []trace.Link
	for _, j := range jobs {
		if len(links) == maxBatchLinks {
			break
		}
		sc := j.traceCtx
		if !sc.IsValid() || hasTrace(links, sc.TraceID()) {
			continue
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	return w.opts.Tracer.Start(ctx, spanBatch,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("bullmq.queue", w.c.q.Name()),
			attribute.Int("bullmq.jobs", len(jobs))))
}

// hasTrace is a linear search over at most maxBatchLinks links: it spares a map
// per batch, and most batches carry a few traces at most.
func hasTrace(links []trace.Link, id trace.TraceID) bool {
	for _, l := range links {
		if l.SpanContext.TraceID() == id {
			return true
		}
	}
	return false
}

// endWithError ends span with an error status.
func endWithError(span trace.Span, err error, msg string) {
	span.RecordError(err)
	span.SetStatus(codes.Error, msg)
	span.End()
}

// batchTrace is the tracing and observing of one batch; with neither a tracer
// nor an observer configured every method is a no-op that allocates nothing.
type batchTrace struct {
	w    *Worker
	span trace.Span // nil without a tracer
}

// traceBatch starts the batch span; the returned context carries it to the
// handler, so the handler's spans become its children.
func (w *Worker) traceBatch(ctx context.Context, jobs []*Job) (context.Context, batchTrace) {
	if w.opts.Tracer == nil {
		return ctx, batchTrace{w: w}
	}
	ctx, span := w.startBatchSpan(ctx, jobs)
	return ctx, batchTrace{w: w, span: span}
}

// retried notes that the handler failed and the batch is offered again.
func (b batchTrace) retried(jobs []*Job, attempt int, err error) {
	if b.span != nil {
		b.span.AddEvent("batch offered again", trace.WithAttributes(
			attribute.Int("attempt", attempt), attribute.String("error", err.Error())))
	}
	if b.w.opts.Observer != nil {
		b.w.opts.Observer.BatchRetried(len(jobs), err)
	}
}

// acknowledge runs ack in an "ack" child span and reports its duration.
func (b batchTrace) acknowledge(ctx context.Context, jobs []*Job, ack func()) {
	var span trace.Span
	if b.span != nil {
		_, span = b.w.opts.Tracer.Start(ctx, spanAck, trace.WithAttributes(attribute.Int("bullmq.jobs", len(jobs))))
	}
	start := time.Now()
	ack()
	took := time.Since(start)
	if span != nil {
		span.End()
	}
	if b.w.opts.Observer != nil {
		b.w.opts.Observer.BatchAcked(len(jobs), took)
	}
}

// givenBack ends the span of a batch that went back to wait unprocessed.
func (b batchTrace) givenBack(err error) {
	if b.span != nil {
		endWithError(b.span, err, "batch not processed, given back")
	}
}

func (b batchTrace) end() {
	if b.span != nil {
		b.span.End()
	}
}
