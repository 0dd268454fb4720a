package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Input is one event as a source received it.
type Input struct {
	Payload []byte // the event JSON exactly as received
	// IdempotencyKey identifies the delivery; when empty, ContentKey(Payload) is used,
	// so a client that re-sends the same bytes does not create a second row.
	IdempotencyKey string
	Source         string    // e.g. "http", "bullmq:audit-events"
	ReceivedAt     time.Time // when the source got it; zero means now
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
	Reason   string             `json:"reason,omitempty"` // audit.ReasonValidation or audit.ReasonIntegrityViolation
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
}

// Processor validates, verifies and stores batches of events.
type Processor struct {
	store audit.EventStore
	cfg   atomic.Pointer[Config] // replaced whole on reload, read once per batch
	stats counters
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
	p.cfg.Store(&cfg)
}

// Process handles inputs as one batch. The outcomes are in input order. A non-nil
// error means nothing of the batch was written (the store failed); it is
// transient (audit.IsTransient) unless the context ended.
func (p *Processor) Process(ctx context.Context, inputs []Input) ([]Outcome, error) {
	cfg := p.cfg.Load()
	now := cfg.Now()
	outcomes := make([]Outcome, len(inputs))
	var batch audit.Batch
	recordAt := make([]int, 0, len(inputs)) // batch.Records[i] came from inputs[recordAt[i]]
	firstWithKey := make(map[string]int, len(inputs))
	deadKeys := make(map[string]bool)

	for i, in := range inputs {
		key := in.IdempotencyKey
		if key == "" {
			key = ContentKey(in.Payload)
		}
		received := in.ReceivedAt
		if received.IsZero() {
			received = now
		}
		outcomes[i].Key = key

		ev, warnings, err := audit.ParseEvent(in.Payload, cfg.Rules, now)
		outcomes[i].Warnings = warnings
		var integrity audit.IntegrityResult
		if err == nil {
			integrity, err = audit.VerifyIntegrity(&ev, cfg.HMACKey)
		}
		if err != nil {
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
			continue
		}
		firstWithKey[key] = i
		batch.Records = append(batch.Records, audit.NewRecord(ev, key, in.Source, integrity, received))
		recordAt = append(recordAt, i)
	}

	if len(batch.Records) > 0 || len(batch.DeadLetters) > 0 {
		results, err := p.storeBatch(ctx, cfg.Breaker, batch)
		if err != nil {
			p.stats.storeFailures.Add(1)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("store batch of %d: %w", len(inputs), errors.Join(ctx.Err(), err))
			}
			return nil, fmt.Errorf("store batch of %d: %w", len(inputs), err)
		}
		for j, res := range results {
			o := &outcomes[recordAt[j]]
			if res.Duplicate {
				o.Status = StatusDuplicate
			} else {
				o.Status, o.Seq = StatusStored, res.Seq
			}
		}
	}
	p.stats.count(outcomes)
	return outcomes, nil
}

// storeBatch calls the store through the breaker, if there is one.
func (p *Processor) storeBatch(ctx context.Context, br *Breaker, batch audit.Batch) ([]audit.StoreResult, error) {
	if br == nil {
		return p.store.StoreBatch(ctx, batch)
	}
	if !br.allow() {
		return nil, ErrBreakerOpen
	}
	results, err := p.store.StoreBatch(ctx, batch)
	if ctx.Err() == nil {
		br.record(err)
	} else {
		br.release() // a caller giving up says nothing about the store
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
	if audit.IsIntegrityViolation(err) {
		dl.Reason = audit.ReasonIntegrityViolation
	}
	return dl
}

// Stats are running totals since the processor started.
type Stats struct {
	Stored              int64 `json:"stored"`
	Duplicates          int64 `json:"duplicates"`
	RejectedValidation  int64 `json:"rejectedValidation"`
	IntegrityViolations int64 `json:"integrityViolations"`
	StoreFailures       int64 `json:"storeFailures"` // failed StoreBatch calls (batches, not events)
	Batches             int64 `json:"batches"`
}

type counters struct {
	stored, duplicates, rejectedValidation, integrityViolations, storeFailures, batches atomic.Int64
}

func (c *counters) count(outcomes []Outcome) {
	var stored, duplicates, integrity, invalid int64
	for _, o := range outcomes {
		switch {
		case o.Status == StatusStored:
			stored++
		case o.Status == StatusDuplicate:
			duplicates++
		case o.Reason == audit.ReasonIntegrityViolation:
			integrity++
		default:
			invalid++
		}
	}
	c.batches.Add(1)
	c.stored.Add(stored)
	c.duplicates.Add(duplicates)
	c.integrityViolations.Add(integrity)
	c.rejectedValidation.Add(invalid)
}

// Stats returns the running totals.
func (p *Processor) Stats() Stats {
	c := &p.stats
	return Stats{
		Stored: c.stored.Load(), Duplicates: c.duplicates.Load(),
		RejectedValidation: c.rejectedValidation.Load(), IntegrityViolations: c.integrityViolations.Load(),
		StoreFailures: c.storeFailures.Load(), Batches: c.batches.Load(),
	}
}
