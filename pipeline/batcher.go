package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Batcher groups submissions from many concurrent callers (HTTP requests, say)
// into batches of at most MaxSize events, waiting at most MaxWait for a batch to
// fill, and runs up to Flushers batches through the Processor at once. Each
// caller gets its own outcomes back once its batch is durable.
type Batcher struct {
	proc     *Processor
	maxSize  atomic.Int64 // events; changed by SetLimits
	maxWait  atomic.Int64 // nanoseconds
	requests chan *request
	flushers chan struct{} // semaphore
	timeout  time.Duration
	mu       sync.RWMutex // held for reading while sending a request, so Close sees no late sends
	isClosed bool
	closing  chan struct{}
	loopDone chan struct{}
	inFlight sync.WaitGroup
	pending  atomic.Int64 // events submitted and not yet answered
}

// BatcherConfig bounds the batches.
type BatcherConfig struct {
	MaxSize  int           // events per batch; default 1000
	MaxWait  time.Duration // how long the first event of a batch may wait; default 5ms
	Flushers int           // batches stored concurrently; default 2
	// StoreTimeout bounds one batch's trip through the store; default 30s. A batch
	// serves several callers, so no single caller's context may cancel it.
	StoreTimeout time.Duration
}

type request struct {
	ctx      context.Context
	inputs   []Input
	outcomes []Outcome
	err      error
	done     chan struct{}
}

// ErrClosed is returned by Submit after Close.
var ErrClosed = &audit.Error{Code: audit.CodeUnavailable, Message: "pipeline is shutting down"}

// NewBatcher starts a batcher in front of proc. Close it to stop.
func NewBatcher(proc *Processor, cfg BatcherConfig) *Batcher {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 1000
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Millisecond
	}
	if cfg.Flushers <= 0 {
		cfg.Flushers = 2
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 30 * time.Second
	}
	b := &Batcher{
		proc: proc, timeout: cfg.StoreTimeout,
		requests: make(chan *request, 4096),
		flushers: make(chan struct{}, cfg.Flushers),
		closing:  make(chan struct{}), loopDone: make(chan struct{}),
	}
	b.SetLimits(cfg.MaxSize, cfg.MaxWait)
	go b.loop()
	return b
}

// SetLimits changes the batch bounds of a running batcher (configuration
// reload); values ≤ 0 leave a bound as it is.
func (b *Batcher) SetLimits(maxSize int, maxWait time.Duration) {
	if maxSize > 0 {
		b.maxSize.Store(int64(maxSize))
	}
	if maxWait > 0 {
		b.maxWait.Store(int64(maxWait))
	}
}

// Submit processes inputs in some batch and returns their outcomes once that
// batch is durable. If ctx ends first, Submit returns ctx's error; the events may
// still be stored, which a retry with the same idempotency keys will find.
func (b *Batcher) Submit(ctx context.Context, inputs []Input) ([]Outcome, error) {
	if len(inputs) == 0 {
		return nil, nil
	}
	req := &request{ctx: ctx, inputs: inputs, done: make(chan struct{})}
	b.mu.RLock()
	if b.isClosed {
		b.mu.RUnlock()
		return nil, ErrClosed
	}
	b.pending.Add(int64(len(inputs)))
	select {
	case b.requests <- req:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.pending.Add(-int64(len(inputs)))
		b.mu.RUnlock()
		return nil, ctx.Err()
	}
	select {
	case <-req.done:
		return req.outcomes, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *Batcher) loop() {
	defer close(b.loopDone)
	var pending []*request
	size := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(pending) == 0 {
			return
		}
		timer.Stop()
		reqs := pending
		pending, size = nil, 0
		b.flushers <- struct{}{}
		b.inFlight.Add(1)
		go func() {
			defer func() { <-b.flushers; b.inFlight.Done() }()
			b.run(reqs)
		}()
	}
	add := func(r *request) {
		if len(pending) == 0 {
			timer.Reset(time.Duration(b.maxWait.Load()))
		}
		pending = append(pending, r)
		size += len(r.inputs)
		if int64(size) >= b.maxSize.Load() {
			flush()
		}
	}
	for {
		select {
		case r := <-b.requests:
			add(r)
		case <-timer.C:
			flush()
		case <-b.closing:
			// Take what was already queued, then flush it all.
			for {
				select {
				case r := <-b.requests:
					add(r)
					continue
				default:
				}
				break
			}
			flush()
			return
		}
	}
}

// run stores the inputs of several requests as one batch and hands each request its share.
func (b *Batcher) run(reqs []*request) {
	defer func() {
		for _, r := range reqs {
			b.pending.Add(-int64(len(r.inputs)))
		}
	}()
	var inputs []Input
	live := reqs[:0:0]
	for _, r := range reqs {
		if r.ctx.Err() != nil { // the caller gave up before the batch was written
			r.err = r.ctx.Err()
			close(r.done)
			continue
		}
		live = append(live, r)
		inputs = append(inputs, r.inputs...)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), b.timeout)
	defer cancel()
	outcomes, err := b.proc.Process(ctx, inputs)
	for _, r := range live {
		if err != nil {
			r.err = err
		} else {
			r.outcomes, outcomes = outcomes[:len(r.inputs):len(r.inputs)], outcomes[len(r.inputs):]
		}
		close(r.done)
	}
}

// Pending is the number of events submitted and not yet answered.
func (b *Batcher) Pending() int64 { return b.pending.Load() }

// Close stops taking submissions and waits until everything already submitted has
// been stored, or ctx ends.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.isClosed {
		b.isClosed = true
		close(b.closing)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		<-b.loopDone
		b.inFlight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("pipeline: batches still in flight at shutdown"), ctx.Err())
	}
}
