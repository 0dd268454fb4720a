package pipeline

import (
	"context"
	"sync"
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
// pattern detectors read the valid events. Process calls every observer
// synchronously after the store committed (or failed), before it returns — an
// EarlyObserver instead while the store writes — so for a BullMQ job this
// happens before the acknowledgement: an observer that counts by
// AcceptedEvent.Key counts a redelivered event once. Observers must be quick
// and respect ctx; they cannot fail the batch.
type Observer interface {
	ObserveBatch(ctx context.Context, r *BatchReport)
}

// EarlyObserver is an Observer whose work on a batch can overlap the store
// write: instead of ObserveBatch it gets ObserveEarly, in its own goroutine,
// as soon as the batch is verified, with BatchReport.Accepted holding the
// batch's valid events (one per idempotency key; Stored and Seq not known yet,
// Outcomes nil). Process waits for it before returning, so for a BullMQ batch it
// still ends before the acknowledgement. The events are valid, so a failed
// store only delays them: the batch is offered again until it is stored, and an
// observer that counts by key (as the pattern detectors do) counts each once.
type EarlyObserver interface {
	Observer
	ObserveEarly(ctx context.Context, r *BatchReport)
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
func (p *Processor) Instrument(in Instruments) {
	p.inst = in
	p.early, p.late = nil, nil
	for _, o := range in.Observers {
		if eo, ok := o.(EarlyObserver); ok {
			p.early = append(p.early, eo)
		} else {
			p.late = append(p.late, o)
		}
	}
}

func (p *Processor) tracer() trace.Tracer {
	if p.inst.Tracer == nil {
		return noopTracer
	}
	return p.inst.Tracer
}

var noopTracer = noop.NewTracerProvider().Tracer("")

// startBatchSpan starts the span of one batch, linked to the producers' spans.
func (p *Processor) startBatchSpan(ctx context.Context, inputs []Input) (context.Context, trace.Span) {
	if p.inst.Tracer == nil {
		return noopTracer.Start(ctx, "process_batch") // no spans: no links to gather
	}
	var links []trace.Link
	for _, in := range inputs {
		if len(links) == maxLinks {
			break
		}
		if in.Trace.IsValid() && !linksTrace(links, in.Trace.TraceID()) {
			links = append(links, trace.Link{SpanContext: in.Trace})
		}
	}
	return p.inst.Tracer.Start(ctx, "process_batch",
		trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("audit.batch.size", len(inputs))))
}

// linksTrace is a linear search over at most maxLinks links, sparing a map per
// batch: most batches carry a few traces at most.
func linksTrace(links []trace.Link, id trace.TraceID) bool {
	for _, l := range links {
		if l.SpanContext.TraceID() == id {
			return true
		}
	}
	return false
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
	for _, o := range p.late {
		o.ObserveBatch(ctx, r)
	}
}

// observeEarly starts the early observers on the batch's valid events (the
// first input of each key, as recordAt lists them) and returns a function that
// waits for them.
func (p *Processor) observeEarly(ctx context.Context, r *BatchReport, recordAt []int, outcomes []Outcome, events []audit.Event) (wait func()) {
	if len(p.early) == 0 {
		return func() {}
	}
	r.Accepted = make([]AcceptedEvent, len(recordAt))
	for j, i := range recordAt {
		r.Accepted[j] = AcceptedEvent{Input: i, Key: outcomes[i].Key, Event: &events[i]}
	}
	var wg sync.WaitGroup
	for _, eo := range p.early {
		wg.Go(func() { eo.ObserveEarly(ctx, r) })
	}
	return wg.Wait
}
