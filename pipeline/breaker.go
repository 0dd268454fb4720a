package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// BreakerState is the state of a circuit breaker.
type BreakerState string

const (
	BreakerClosed   BreakerState = "CLOSED"    // store calls go through
	BreakerOpen     BreakerState = "OPEN"      // store calls are refused until the recovery timeout
	BreakerHalfOpen BreakerState = "HALF_OPEN" // one probe batch is allowed through
)

// ErrBreakerOpen is returned instead of calling the store while the breaker is
// open. It is transient: the batch was not written and can be retried as is.
var ErrBreakerOpen = &audit.Error{Code: audit.CodeUnavailable, Message: "circuit breaker is open: the store kept failing"}

// Breaker stops calls to a failing store. After FailureThreshold consecutive
// transient failures it opens; after RecoveryTimeout it lets exactly one probe
// through (half-open); the probe's success closes it, its failure opens it again.
// Unlike the original's breaker it only counts store failures (never invalid
// events), allows a single probe, and keeps no global state.
type Breaker struct {
	threshold int
	recovery  time.Duration
	now       func() time.Time
	onChange  func(from, to BreakerState)

	mu       sync.Mutex
	state    BreakerState
	failures int
	openedAt time.Time
	probing  bool
	lastErr  error         // the last transient failure, quoted while open
	changed  chan struct{} // closed and replaced on every state change
}

// BreakerConfig configures a Breaker; zero values take the original's defaults.
type BreakerConfig struct {
	FailureThreshold int           // default 5
	RecoveryTimeout  time.Duration // default 60s
	// OnChange is called (without locks held) on every transition, for logs and metrics.
	OnChange func(from, to BreakerState)
	Now      func() time.Time
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.RecoveryTimeout <= 0 {
		cfg.RecoveryTimeout = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{
		threshold: cfg.FailureThreshold, recovery: cfg.RecoveryTimeout, now: cfg.Now,
		onChange: cfg.OnChange, state: BreakerClosed, changed: make(chan struct{}),
	}
}

// Reconfigure changes the threshold and the recovery timeout of a running
// breaker (configuration reload); the state and the failures counted are kept.
func (b *Breaker) Reconfigure(failureThreshold int, recoveryTimeout time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if failureThreshold > 0 {
		b.threshold = failureThreshold
	}
	if recoveryTimeout > 0 {
		b.recovery = recoveryTimeout
	}
	close(b.changed) // wake Wait so that it re-reads the timeout
	b.changed = make(chan struct{})
}

// State returns the current state.
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// allow decides whether a store call may go ahead. When it returns true the
// caller must report the call's outcome with record.
func (b *Breaker) allow() bool {
	b.mu.Lock()
	var from, to BreakerState
	ok := false
	switch b.state {
	case BreakerClosed:
		ok = true
	case BreakerOpen:
		if b.now().Sub(b.openedAt) >= b.recovery {
			from, to = b.setLocked(BreakerHalfOpen)
			b.probing, ok = true, true
		}
	case BreakerHalfOpen:
		if !b.probing {
			b.probing, ok = true, true
		}
	}
	b.mu.Unlock()
	b.notify(from, to)
	return ok
}

// record reports the outcome of an allowed call. Only transient failures count.
func (b *Breaker) record(err error) {
	b.mu.Lock()
	var from, to BreakerState
	switch {
	case err == nil || !audit.IsTransient(err):
		b.failures, b.probing, b.lastErr = 0, false, nil
		if b.state != BreakerClosed {
			from, to = b.setLocked(BreakerClosed)
		}
	case b.state == BreakerHalfOpen:
		b.probing, b.lastErr = false, err
		b.openedAt = b.now()
		from, to = b.setLocked(BreakerOpen)
	default:
		b.failures++
		b.lastErr = err
		if b.state == BreakerClosed && b.failures >= b.threshold {
			b.openedAt = b.now()
			from, to = b.setLocked(BreakerOpen)
		}
	}
	b.mu.Unlock()
	b.notify(from, to)
}

// refusal is the error for a call refused while open: ErrBreakerOpen with
// the store's last failure, so that a client refused with 503 learns why
// (e.g. a full disk) and not only that the breaker is open.
func (b *Breaker) refusal() error {
	b.mu.Lock()
	last := b.lastErr
	b.mu.Unlock()
	if last == nil {
		return ErrBreakerOpen
	}
	return fmt.Errorf("%w; last store error: %v", ErrBreakerOpen, last)
}

// release gives back an allowed call whose outcome says nothing about the store.
func (b *Breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

func (b *Breaker) setLocked(to BreakerState) (BreakerState, BreakerState) {
	from := b.state
	b.state = to
	close(b.changed)
	b.changed = make(chan struct{})
	return from, to
}

func (b *Breaker) notify(from, to BreakerState) {
	if to != "" && b.onChange != nil {
		b.onChange(from, to)
	}
}

// Wait blocks while the breaker is open and its recovery timeout has not passed,
// so that sources stop taking new work from their queue meanwhile.
func (b *Breaker) Wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		state, changed := b.state, b.changed
		remaining := b.recovery - b.now().Sub(b.openedAt)
		b.mu.Unlock()
		if state != BreakerOpen || remaining <= 0 {
			return nil
		}
		timer := time.NewTimer(remaining)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}
