package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	audit "github.com/smartlogs/audit-worker"
)

// Input is one event as a source received it.
type Input struct {
	Payload []byte // the event JSON exactly as received
	// IdempotencyKey identifies the delivery; when empty, ContentKey(Payload) is used,
	// so a client that re-sends the same bytes does not create a second row.
	IdempotencyKey string
	Source         string    // e.g. "http", "bullmq:audit-events"
	ReceivedAt     time.Time // when the source got it (a BullMQ job: when it was enqueued); zero means now
	// Organizations are those the sender may send events of; nil means any.
	// An event of another organisation, or of none, is rejected
	// (audit.ReasonForbiddenOrganization) and dead-lettered.
	Organizations []string
	// Trace is the producer's span (W3C trace context of the job or request),
	// if it sent one; the batch span links to it.
	Trace trace.SpanContext
}

// ContentKey is the idempotency key of a payload that came without one.
func ContentKey(payload []byte) string {
	sum := sha256.Sum256(payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Status is what happened to one input.
type Status string

const (
	StatusStored    Status = "stored"    // written now
	StatusDuplicate Status = "duplicate" // written before under the same key; nothing written now
	StatusRejected  Status = "rejected"  // refused for good and dead-lettered
)

// Outcome is the result for one input.
type Outcome struct {
	Status   Status             `json:"status"`
	Seq      int64              `json:"seq,omitempty"`
	Key      string             `json:"idempotencyKey"`
	Reason   string             `json:"reason,omitempty"` // audit.ReasonValidation, ReasonIntegrityViolation or ReasonStoreRefused
	Message  string             `json:"message,omitempty"`
	Errors   []audit.FieldError `json:"errors,omitempty"`
	Warnings []string           `json:"warnings,omitempty"`
}

// Config holds what the processor needs to judge events.
type Config struct {
	Rules   audit.Rules
	HMACKey []byte           // verifies HMAC-SHA256 signatures when set
	Now     func() time.Time // clock for the skew rule; time.Now when nil
	// Breaker, when set, guards the store: while it is open, Process refuses
	// batches with ErrBreakerOpen instead of calling the store.
	Breaker *Breaker
	// StoreTimeout bounds one batch's store call; default DefaultStoreTimeout.
	// A store that does not answer in time (a server that hangs, or a
	// connection whose path died without a reset) fails the batch with a
	// transient error, and the breaker counts it as a store failure.
	StoreTimeout time.Duration
}

// DefaultStoreTimeout is Config.StoreTimeout's default: as long as the HTTP
// batcher gives a batch (BatcherConfig.StoreTimeout), so that the two paths
// give up on a silent store alike.
const DefaultStoreTimeout = 30 * time.Second

// errStoreTimeout is the cause of a store call's context ending at StoreTimeout.
var errStoreTimeout = errors.New("store timeout")

// Processor validates, verifies and stores batches of events.
type Processor struct {
	store audit.EventStore
	cfg   atomic.Pointer[Config] // replaced whole on reload, read once per batch
	stats counters
	inst  Instruments
	early []EarlyObserver // those of inst.Observers that start before the store
	late  []Observer      // the others, told after it
}

// NewProcessor returns a processor writing to store.
func NewProcessor(store audit.EventStore, cfg Config) *Processor {
	p := &Processor{store: store}
	p.Reconfigure(cfg)
	return p
}

// Reconfigure replaces the rules, the HMAC key and the breaker for the batches
// that start from now on (configuration reload); batches in flight finish with
// the configuration they started with.
func (p *Processor) Reconfigure(cfg Config) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	p.cfg.Store(&cfg)
}

// Process handles inputs as one batch. The outcomes are in input order. An
// event the store refuses (audit.StoreResult.Refused) is rejected on its own
// with audit.ReasonStoreRefused; the others are stored all the same. A non-nil
// error means nothing of the batch was written (the store failed); it is
// transient (audit.IsTransient) unless the context ended or the store found
// the batch itself malformed.
//
// The batch runs in three stages, each timed and traced: validate (parse and
// check every event), verify (hash and signature) and store (one transaction).
func (p *Processor) Process(ctx context.Context, inputs []Input) ([]Outcome, error) {
	cfg := p.cfg.Load()
	ctx, span := p.startBatchSpan(ctx, inputs)
	defer span.End()
	report := &BatchReport{Inputs: inputs}
	now := cfg.Now()
	outcomes := make([]Outcome, len(inputs))
	events := make([]audit.Event, len(inputs))
	failed := make([]error, len(inputs))

	stage := p.startStage(ctx, StageValidate)
	for i, in := range inputs {
		outcomes[i].Key = in.IdempotencyKey
		if outcomes[i].Key == "" {
			outcomes[i].Key = ContentKey(in.Payload)
		}
		events[i], outcomes[i].Warnings, failed[i] = audit.ParseEvent(in.Payload, cfg.Rules, now)
		if failed[i] == nil && in.Organizations != nil && !slices.Contains(in.Organizations, events[i].OrganizationID) {
			failed[i] = forbiddenOrganization(events[i].OrganizationID)
		}
	}
	report.Stages.Validate = stage.end(nil)

	stage = p.startStage(ctx, StageVerify)
	integrity := make([]audit.IntegrityResult, len(inputs))
	for i := range inputs {
		if failed[i] == nil {
			integrity[i], failed[i] = audit.VerifyIntegrity(&events[i], cfg.HMACKey)
		}
	}
	report.Stages.Verify = stage.end(nil)

	// Sized for the whole batch: a Record is 464 bytes, and growing the
	// slice by doubling would copy each one once more, on average.
	batch := audit.Batch{Records: make([]audit.Record, 0, len(inputs))}
	recordAt := make([]int, 0, len(inputs)) // batch.Records[i] came from inputs[recordAt[i]]
	firstWithKey := make(map[string]int, len(inputs))
	var repeats []int // inputs whose key an earlier input of the batch has
	deadKeys := make(map[string]bool)
	for i, in := range inputs {
		key := outcomes[i].Key
		received := in.ReceivedAt
		if received.IsZero() {
			received = now
		}
		if err := failed[i]; err != nil {
			dl := deadLetter(in, key, received, err)
			outcomes[i].Status, outcomes[i].Reason = StatusRejected, dl.Reason
			outcomes[i].Message, outcomes[i].Errors = dl.Message, dl.Errors
			if !deadKeys[key] {
				deadKeys[key] = true
				batch.DeadLetters = append(batch.DeadLetters, dl)
			}
			continue
		}
		if _, seen := firstWithKey[key]; seen {
			outcomes[i].Status = StatusDuplicate // same key twice in one batch: store it once
			repeats = append(repeats, i)
			continue
		}
		firstWithKey[key] = i
		rec := audit.NewRecord(events[i], key, in.Source, integrity[i], received)
		rec.Payload = in.Payload // for the dead letter, if the store refuses it
		batch.Records = append(batch.Records, rec)
		recordAt = append(recordAt, i)
	}

	waitEarly := p.observeEarly(ctx, &BatchReport{Inputs: inputs, Stages: report.Stages}, recordAt, outcomes, events)
	defer waitEarly() // also when the store fails: the observers finish before the batch is given back

	if len(batch.Records) > 0 || len(batch.DeadLetters) > 0 {
		stage = p.startStage(ctx, StageStore)
		results, err := p.storeBatch(ctx, cfg, batch)
		report.Stages.Store = stage.end(err)
		if err != nil {
			p.stats.storeFailures.Add(1)
			if ctx.Err() != nil {
				err = errors.Join(ctx.Err(), err)
			}
			err = fmt.Errorf("store batch of %d: %w", len(inputs), err)
			span.RecordError(err)
			span.SetStatus(codes.Error, "store failed")
			report.Err = err
			p.observe(ctx, report)
			return nil, err
		}
		for j, res := range results {
			o := &outcomes[recordAt[j]]
			switch {
			case res.Refused != "":
				o.Status, o.Reason, o.Message = StatusRejected, audit.ReasonStoreRefused, res.Refused
			case res.Duplicate:
				o.Status = StatusDuplicate
			default:
				o.Status, o.Seq = StatusStored, res.Seq
			}
		}
		// A repeat of a refused event is refused as well: nothing was stored.
		for _, i := range repeats {
			if first := &outcomes[firstWithKey[outcomes[i].Key]]; first.Status == StatusRejected {
				outcomes[i].Status, outcomes[i].Reason, outcomes[i].Message = first.Status, first.Reason, first.Message
			}
		}
	}
	report.CommittedAt = time.Now()
	report.Outcomes = outcomes
	report.Accepted = make([]AcceptedEvent, 0, len(recordAt))
	for i := range outcomes {
		if outcomes[i].Status != StatusRejected {
			report.Accepted = append(report.Accepted, AcceptedEvent{
				Input: i, Key: outcomes[i].Key, Event: &events[i],
				Stored: outcomes[i].Status == StatusStored, Seq: outcomes[i].Seq,
			})
		}
	}
	p.stats.count(outcomes)
	p.observe(ctx, report)
	return outcomes, nil
}

// storeBatch calls the store through the breaker, if there is one, for at
// most cfg.StoreTimeout.
func (p *Processor) storeBatch(ctx context.Context, cfg *Config, batch audit.Batch) ([]audit.StoreResult, error) {
	br := cfg.Breaker
	if br != nil && !br.allow() {
		return nil, br.refusal()
	}
	sctx, cancel := context.WithTimeoutCause(ctx, cfg.StoreTimeout, errStoreTimeout)
	defer cancel()
	results, err := p.store.StoreBatch(sctx, batch)
	timedOut := err != nil && ctx.Err() == nil && errors.Is(context.Cause(sctx), errStoreTimeout)
	if timedOut {
		err = audit.Errorf(audit.CodeUnavailable, "the store did not answer within %s: %w", cfg.StoreTimeout, err)
	}
	if br != nil {
		if ctx.Err() == nil {
			br.record(err) // a store that did not answer in time failed as well
		} else {
			br.release() // a caller giving up says nothing about the store
		}
	}
	return results, err
}

// deadLetter describes why an input was refused.
func deadLetter(in Input, key string, received time.Time, err error) audit.DeadLetter {
	dl := audit.DeadLetter{
		IdempotencyKey: key, Source: in.Source, Payload: in.Payload,
		ReceivedAt: received, Message: err.Error(), Reason: audit.ReasonValidation,
	}
	var ve *audit.ValidationError
	if errors.As(err, &ve) {
		dl.Errors = ve.Errors
	}
	switch {
	case audit.IsIntegrityViolation(err):
		dl.Reason = audit.ReasonIntegrityViolation
	case audit.ErrorCode(err) == audit.CodeForbidden:
		dl.Reason = audit.ReasonForbiddenOrganization
	}
	return dl
}

// forbiddenOrganization is the refusal of an event whose organisation the
// sender's credentials do not cover.
func forbiddenOrganization(org string) error {
	if org == "" {
		return audit.Errorf(audit.CodeForbidden, "the event has no organizationId, and the sender may send events of its own organisations only")
	}
	return audit.Errorf(audit.CodeForbidden, "the sender may not send events of organization %q", org)
}

// Stats are running totals since the processor started.
type Stats struct {
	Stored              int64 `json:"stored"`
	Duplicates          int64 `json:"duplicates"`
	RejectedValidation  int64 `json:"rejectedValidation"`
	IntegrityViolations int64 `json:"integrityViolations"`
	StoreRefused        int64 `json:"storeRefused"`  // events the store refused (ReasonStoreRefused)
	Forbidden           int64 `json:"forbidden"`     // events of an organisation their sender may not send (ReasonForbiddenOrganization)
	StoreFailures       int64 `json:"storeFailures"` // failed StoreBatch calls (batches, not events)
	Batches             int64 `json:"batches"`
}

type counters struct {
	stored, duplicates, rejectedValidation, integrityViolations, storeRefused, forbidden, storeFailures, batches atomic.Int64
}

func (c *counters) count(outcomes []Outcome) {
	var stored, duplicates, integrity, refused, forbidden, invalid int64
	for _, o := range outcomes {
		switch {
		case o.Status == StatusStored:
			stored++
		case o.Status == StatusDuplicate:
			duplicates++
		case o.Reason == audit.ReasonIntegrityViolation:
			integrity++
		case o.Reason == audit.ReasonStoreRefused:
			refused++
		case o.Reason == audit.ReasonForbiddenOrganization:
			forbidden++
		default:
			invalid++
		}
	}
	c.batches.Add(1)
	c.stored.Add(stored)
	c.duplicates.Add(duplicates)
	c.integrityViolations.Add(integrity)
	c.storeRefused.Add(refused)
	c.forbidden.Add(forbidden)
	c.rejectedValidation.Add(invalid)
}

// Stats returns the running totals.
func (p *Processor) Stats() Stats {
	c := &p.stats
	return Stats{
		Stored: c.stored.Load(), Duplicates: c.duplicates.Load(),
		RejectedValidation: c.rejectedValidation.Load(), IntegrityViolations: c.integrityViolations.Load(),
		StoreRefused: c.storeRefused.Load(), Forbidden: c.forbidden.Load(), StoreFailures: c.storeFailures.Load(), Batches: c.batches.Load(),
	}
}
