package pipeline

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	audit "github.com/smartlogs/audit-worker"
)

// Stage names, used for span names and for the stage latency metrics. The
// sources add their own (the BullMQ worker: "ack").
const (
	StageValidate = "validate"
	StageVerify   = "verify"
	StageStore    = "store"
)

// maxLinks bounds the producer links on one batch span: a batch of a thousand
// jobs from one producer trace would otherwise carry a thousand copies.
const maxLinks = 128

// Observer watches the processor: telemetry counts and times batches, the
// pattern detectors read the events that became durable. Process calls every
// observer synchronously after the store committed (or failed), before it
// returns, so for a BullMQ job this happens before the acknowledgement: an
// observer that counts by AcceptedEvent.Key counts a redelivered event once.
// Observers must be quick and respect ctx; they cannot fail the batch.
type Observer interface {
	ObserveBatch(ctx context.Context, r *BatchReport)
}

// BatchReport is what happened to one batch.
type BatchReport struct {
	Inputs   []Input
	Outcomes []Outcome // in input order; nil when Err is set
	// Accepted are the valid events of the batch in input order: stored now, or
	// found already stored under the same key (a redelivery after a crash, or a
	// repeat inside the batch). Rejected events are never in it.
	Accepted    []AcceptedEvent
	Stages      StageTimes
	Err         error     // the store failed: nothing of the batch was written
	CommittedAt time.Time // when the store returned; zero when Err is set
}

// AcceptedEvent is one valid event of a batch.
type AcceptedEvent struct {
	Input  int          // index in BatchReport.Inputs
	Key    string       // idempotency key
	Event  *audit.Event // parsed; read-only
	Stored bool         // written by this batch (false: it was already there)
	Seq    int64        // the store's sequence number, when Stored
}

// StageTimes are the wall-clock durations of a batch's stages.
type StageTimes struct {
	Validate, Verify, Store time.Duration
}

// Instruments are the processor's tracer and observers.
type Instruments struct {
	Tracer    trace.Tracer // nil: no spans
	Observers []Observer
}

// Instrument sets the tracer and observers. Call it before the first batch.
func (p *Processor) Instrument(in Instruments) { p.inst = in }

func (p *Processor) tracer() trace.Tracer {
	if p.inst.Tracer == nil {
		return noopTracer
	}
	return p.inst.Tracer
}

var noopTracer = noop.NewTracerProvider().Tracer("")

// startBatchSpan starts the span of one batch, linked to the producers' spans.
func (p *Processor) startBatchSpan(ctx context.Context, inputs []Input) (context.Context, trace.Span) {
	var links []trace.Link
	seen := make(map[trace.TraceID]bool)
	for _, in := range inputs {
		if len(links) == maxLinks {
			break
		}
		if in.Trace.IsValid() && !seen[in.Trace.TraceID()] {
			seen[in.Trace.TraceID()] = true
			links = append(links, trace.Link{SpanContext: in.Trace})
		}
	}
	return p.tracer().Start(ctx, "process_batch",
		trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("audit.batch.size", len(inputs))))
}

// stageTimer times one stage and traces it as a child span of the batch.
type stageTimer struct {
	span  trace.Span
	start time.Time
}

func (p *Processor) startStage(ctx context.Context, name string) stageTimer {
	_, span := p.tracer().Start(ctx, name)
	return stageTimer{span: span, start: time.Now()}
}

func (s stageTimer) end(err error) time.Duration {
	d := time.Since(s.start)
	if err != nil {
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, "failed")
	}
	s.span.End()
	return d
}

func (p *Processor) observe(ctx context.Context, r *BatchReport) {
	for _, o := range p.inst.Observers {
		o.ObserveBatch(ctx, r)
	}
}
