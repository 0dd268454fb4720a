package bullmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Handler processes a batch of jobs. It returns one Result per job, or an error
// when the batch could not be processed at all: the Worker then keeps the jobs
// locked, waits, and offers the same batch again. An error the handler calls
// transient (its store was down, say; see TransientChecker) is retried for as
// long as it takes, so an outage burns no attempt and loses no job; any other
// error, or a panic, is retried MaxHandleAttempts times before the jobs are
// handled one by one and those that still fail are failed.
type Handler interface {
	Handle(ctx context.Context, jobs []*Job) ([]Result, error)
}

// TransientChecker may be implemented by a Handler whose errors can be
// passing, such as its store being down. A batch failing with a transient
// error is kept (its locks renewed) and offered again for as long as it takes,
// without counting an attempt. Any other error, and a panic, counts towards
// WorkerOptions.MaxHandleAttempts. Without it every error counts.
type TransientChecker interface {
	IsTransient(err error) bool
}

// DeadLetterer may be implemented by a Handler to keep the jobs the Worker
// fails because Handle kept failing on them (see MaxHandleAttempts), as it
// keeps the jobs it refuses itself. reasons[i] is why jobs[i] failed. The
// jobs fail once it succeeds, or after MaxHandleAttempts tries.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, jobs []*Job, reasons []string) error
}

// PanicError is a panic in Handle, recovered by the Worker and treated as an
// error that is not transient.
type PanicError struct {
	Value any
	Stack []byte // the handler goroutine's stack when it panicked
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, jobs []*Job) ([]Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, jobs []*Job) ([]Result, error) { return f(ctx, jobs) }

// Result is what happened to one job.
type Result struct {
	// ReturnValue is the JSON stored as the completed job's returnvalue.
	ReturnValue []byte
	// Failure, when not empty, fails the job with this reason.
	Failure string
	// Retry lets a failed job be retried per its attempts and backoff; without
	// it the failure is final (an invalid event will not become valid).
	Retry bool
}

// WorkerOptions configure a Worker. Zero values take the defaults.
type WorkerOptions struct {
	BatchSize   int // jobs per fetch and per Handle call; default 100
	Concurrency int // batches in flight; default 1
	// Gate, when set, is called before every fetch and blocks while new work
	// must not be taken (an open circuit breaker).
	Gate func(ctx context.Context) error
	// RetryBackoff bounds the wait between two offers of a batch whose Handle
	// failed: it doubles from RetryBackoffMin up to RetryBackoffMax (defaults 100 ms, 5 s).
	RetryBackoffMin, RetryBackoffMax time.Duration
	// MaxHandleAttempts bounds how often a batch is handed to the Handler
	// while Handle fails with an error that is not transient (see
	// TransientChecker) or panics. Then each of its jobs is handled alone,
	// once, and a job that still fails is failed for good with the error as
	// its reason (and dead-lettered, see DeadLetterer): one job cannot hold up
	// the others, and nothing is retried forever. Default 5: with the default
	// backoff, 0.75 to 1.5 s of waiting before a batch is split.
	MaxHandleAttempts int
	// DrainDelay is how long an idle worker blocks on the marker before looking
	// again (default 5 s, as BullMQ).
	DrainDelay time.Duration
	// ShutdownTimeout bounds how long in-flight batches may take after Run's
	// context ends; batches not done by then go back to wait. Default 10 s.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Tracer, when set, traces every batch: a "bullmq.batch" span (linked to
	// the producers' spans) that is the parent of the handler's spans and of
	// an "ack" span around the acknowledgement.
	Tracer trace.Tracer
	// Observer, when set, is told of every acknowledged and every re-offered batch.
	Observer WorkerObserver
}

// Worker runs a Consumer: it fetches batches while it has a free slot, hands
// them to the Handler, acknowledges the results, renews the locks of jobs in
// hand, runs the stalled-job check, and shuts down gracefully.
type Worker struct {
	c    *Consumer
	h    Handler
	opts WorkerOptions
	log  *slog.Logger

	mu     sync.Mutex
	inHand map[string]*Job // locked jobs, by id

	batchSize atomic.Int64 // SetBatchSize changes it while running
	slots     slotLimiter  // batches in flight; SetConcurrency changes the limit
}

// slotLimiter bounds the batches in flight; unlike a buffered channel its limit
// can change while slots are taken.
type slotLimiter struct {
	mu      sync.Mutex
	limit   int
	used    int
	changed chan struct{}
}

func (l *slotLimiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.used < l.limit {
			l.used++
			l.mu.Unlock()
			return nil
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (l *slotLimiter) release() {
	l.mu.Lock()
	l.used--
	l.notifyLocked()
	l.mu.Unlock()
}

func (l *slotLimiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.notifyLocked()
	l.mu.Unlock()
}

func (l *slotLimiter) notifyLocked() {
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}

// SetBatchSize changes how many jobs the next fetches take (configuration reload).
func (w *Worker) SetBatchSize(n int) {
	if n > 0 {
		w.batchSize.Store(int64(n))
	}
}

// SetConcurrency changes how many batches may be in flight (configuration
// reload). Lowering it lets the batches in flight finish; no new one starts
// until fewer than n remain.
func (w *Worker) SetConcurrency(n int) {
	if n > 0 {
		w.slots.setLimit(n)
	}
}

// NewWorker returns a worker for c and h. Run starts it.
func NewWorker(c *Consumer, h Handler, opts WorkerOptions) *Worker {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.RetryBackoffMin <= 0 {
		opts.RetryBackoffMin = 100 * time.Millisecond
	}
	if opts.RetryBackoffMax <= 0 {
		opts.RetryBackoffMax = 5 * time.Second
	}
	if opts.MaxHandleAttempts <= 0 {
		opts.MaxHandleAttempts = 5
	}
	if opts.DrainDelay <= 0 {
		opts.DrainDelay = 5 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{c: c, h: h, opts: opts, log: opts.Logger, inHand: map[string]*Job{}}
	w.SetBatchSize(opts.BatchSize)
	w.SetConcurrency(opts.Concurrency)
	return w
}

// Run processes jobs until ctx ends, then stops fetching, lets in-flight batches
// finish within ShutdownTimeout, gives back the rest, and returns.
func (w *Worker) Run(ctx context.Context) error {
	// Work outlives ctx by up to ShutdownTimeout, so that accepted batches finish.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopTimer := context.AfterFunc(ctx, func() {
		time.AfterFunc(w.opts.ShutdownTimeout, cancelWork)
	})
	defer stopTimer()

	var background sync.WaitGroup
	background.Add(2)
	go func() { defer background.Done(); w.renewLocks(workCtx) }()
	go func() { defer background.Done(); w.checkStalled(ctx) }()

	var inFlight sync.WaitGroup
	fetchFailures := 0
	for ctx.Err() == nil {
		if w.opts.Gate != nil {
			if err := w.opts.Gate(ctx); err != nil {
				break
			}
		}
		if w.slots.acquire(ctx) != nil {
			break
		}
		jobs, err := w.c.Fetch(ctx, int(w.batchSize.Load()))
		if err != nil {
			w.slots.release()
			fetchFailures++
			w.log.Warn("fetch failed", "queue", w.c.q.Name(), "err", err)
			sleep(ctx, w.backoff(fetchFailures))
			continue
		}
		fetchFailures = 0
		if len(jobs) == 0 {
			w.slots.release()
			if _, err := w.c.Wait(ctx, w.opts.DrainDelay); err != nil && ctx.Err() == nil {
				w.log.Warn("waiting for jobs failed", "queue", w.c.q.Name(), "err", err)
				sleep(ctx, w.opts.RetryBackoffMin)
			}
			continue
		}
		w.hold(jobs)
		inFlight.Add(1)
		go func() {
			defer func() { w.slots.release(); inFlight.Done() }()
			w.process(ctx, workCtx, jobs)
		}()
	}
	inFlight.Wait()
	cancelWork()
	background.Wait()
	return nil
}

// process handles one batch and acknowledges it. stop ends when shutdown
// begins; work ends when shutdown time is up.
func (w *Worker) process(stop, work context.Context, jobs []*Job) {
	start := time.Now()
	defer w.release(jobs)
	jobs = w.refuseUnprocessable(work, jobs)
	if len(jobs) == 0 {
		return
	}
	ctx, bt := w.traceBatch(work, jobs)
	results, state, err := w.handleRetrying(stop, ctx, jobs, bt, w.opts.MaxHandleAttempts)
	switch state {
	case handleStopped:
		w.giveBack(work, jobs)
		bt.givenBack(err)
		return
	case handleFailing:
		w.log.Warn("batch keeps failing, handling each job alone", "queue", w.c.q.Name(), "jobs", len(jobs),
			"attempts", w.opts.MaxHandleAttempts, "err", err)
		var n int
		results, n = w.handleEachAlone(stop, ctx, jobs, bt, err)
		if n < len(jobs) { // shutdown came first
			w.giveBack(work, jobs[n:])
			jobs = jobs[:n]
		}
	}
	bt.acknowledge(ctx, jobs, func() { w.acknowledge(work, jobs, results) })
	bt.end()
	w.log.Debug("batch done", "queue", w.c.q.Name(), "jobs", len(jobs), "took", time.Since(start).Round(time.Microsecond).String())
}

// handleState is how handleRetrying ended.
type handleState int

const (
	handleDone    handleState = iota // the handler returned results
	handleFailing                    // it failed maxFailures times with errors that are not transient
	handleStopped                    // shutdown began, or the gate closed: the jobs go back unprocessed
)

// handleRetrying hands jobs to the handler until it returns results, waiting
// between offers. Transient errors are retried for as long as it takes; after
// maxFailures other errors or panics it gives up (handleFailing, with the last
// error).
func (w *Worker) handleRetrying(stop, ctx context.Context, jobs []*Job, bt batchTrace, maxFailures int) ([]Result, handleState, error) {
	failures := 0
	for attempt := 1; ; attempt++ {
		results, err := w.handle(ctx, jobs)
		if err == nil {
			return results, handleDone, nil
		}
		if stop.Err() != nil {
			return nil, handleStopped, err
		}
		transient := w.isTransient(err)
		if !transient {
			if failures++; failures >= maxFailures {
				return nil, handleFailing, err
			}
		}
		w.log.Warn("batch not processed, keeping its jobs and retrying", "jobs", len(jobs), "attempt", attempt,
			"transient", transient, "err", err)
		if !sleep(stop, w.backoff(attempt)) {
			return nil, handleStopped, err
		}
		if w.opts.Gate != nil && w.opts.Gate(stop) != nil {
			return nil, handleStopped, err
		}
		bt.retried(jobs, attempt, err)
	}
}

// handle calls the handler, turning a panic into a *PanicError (logged with
// its stack) and a wrong number of results into an error.
func (w *Worker) handle(ctx context.Context, jobs []*Job) (results []Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			w.log.Error("handler panicked", "queue", w.c.q.Name(), "jobs", len(jobs), "first", jobs[0].ID,
				"panic", fmt.Sprint(v), "stack", string(pe.Stack))
			results, err = nil, pe
		}
	}()
	results, err = w.h.Handle(ctx, jobs)
	if err == nil && len(results) != len(jobs) {
		err = fmt.Errorf("handler returned %d results for %d jobs", len(results), len(jobs))
	}
	return results, err
}

// isTransient reports whether the handler says err is passing; a panic never is.
func (w *Worker) isTransient(err error) bool {
	var pe *PanicError
	if errors.As(err, &pe) {
		return false
	}
	tc, ok := w.h.(TransientChecker)
	return ok && tc.IsTransient(err)
}

// handleEachAlone handles the jobs of a batch that kept failing one by one,
// so that the good ones complete: each alone gets one more chance at a
// failure that is not transient (transient ones are retried as for any
// batch). The jobs that still fail get a final failure with their error as
// the reason, dead-lettered through the handler. It returns the results of
// the first n jobs; when shutdown begins, the jobs from n on are left
// unhandled.
func (w *Worker) handleEachAlone(stop, ctx context.Context, jobs []*Job, bt batchTrace, batchErr error) (results []Result, n int) {
	results = make([]Result, len(jobs))
	var failed []*Job
	var reasons []string
	fail := func(i int, err error) {
		results[i] = Result{Failure: err.Error()}
		failed, reasons = append(failed, jobs[i]), append(reasons, err.Error())
		w.log.Error("job failed for good: the handler keeps failing on it", "queue", w.c.q.Name(), "job", jobs[i].ID, "err", err)
	}
	if len(jobs) == 1 { // it was alone already
		fail(0, batchErr)
		n = 1
	}
	for ; n < len(jobs) && stop.Err() == nil; n++ {
		res, state, err := w.handleRetrying(stop, ctx, jobs[n:n+1], bt, 1)
		if state == handleStopped {
			break
		}
		if state == handleFailing {
			fail(n, err)
			continue
		}
		results[n] = res[0]
	}
	w.deadLetter(ctx, failed, reasons)
	return results[:n], n
}

// deadLetter hands the jobs the worker fails to the handler's DeadLetter, if
// it has one, trying MaxHandleAttempts times: a job failed without its entry
// still keeps its data and reason in the failed set.
func (w *Worker) deadLetter(ctx context.Context, jobs []*Job, reasons []string) {
	dl, ok := w.h.(DeadLetterer)
	if !ok || len(jobs) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		err := dl.DeadLetter(ctx, jobs, reasons)
		if err == nil {
			return
		}
		if attempt == w.opts.MaxHandleAttempts || !sleep(ctx, w.backoff(attempt)) {
			w.log.Error("jobs fail without a dead-letter entry", "queue", w.c.q.Name(), "jobs", len(jobs), "err", err)
			return
		}
		w.log.Warn("dead-lettering failed jobs failed, retrying", "jobs", len(jobs), "attempt", attempt, "err", err)
	}
}

// refuseUnprocessable fails, without retry, jobs this worker cannot honour, and
// returns the others.
//
// A job that stalled more than maxStalledCount times carries a deferred failure
// ("defa"), which BullMQ turns into a final failure. Here stalls come from
// workers that died or lost their store, never from the event itself, and
// failing the job would lose a valid event; so it is processed like any other
// (the store deduplicates it if an earlier attempt got as far as the commit).
func (w *Worker) refuseUnprocessable(ctx context.Context, jobs []*Job) []*Job {
	var keep, refused []*Job
	var reasons []string
	for _, j := range jobs {
		if reason, bad := j.Unsupported(); bad {
			refused, reasons = append(refused, j), append(reasons, reason)
			continue
		}
		if j.DeferredFailure != "" {
			w.log.Warn("processing a job that stalled too often instead of failing it, so that its event is not lost",
				"job", j.ID, "stalls", j.StalledCounter)
		}
		keep = append(keep, j)
	}
	if len(refused) > 0 {
		w.retryRedis(ctx, "fail unprocessable jobs", func() error {
			errs, err := w.c.FailFinal(ctx, refused, reasons)
			w.logJobErrors("fail", refused, errs)
			return err
		})
	}
	return keep
}

// acknowledge completes or fails each job as its result says.
func (w *Worker) acknowledge(ctx context.Context, jobs []*Job, results []Result) {
	var done, failed []*Job
	var values [][]byte
	var reasons []string
	for i, r := range results {
		switch {
		case r.Failure == "":
			done, values = append(done, jobs[i]), append(values, r.ReturnValue)
		case r.Retry:
			if delay, ok := BackoffDelay(jobs[i]); ok {
				job, reason := jobs[i], r.Failure
				w.retryRedis(ctx, "retry job", func() error { return w.c.Retry(ctx, job, reason, delay) })
				continue
			}
			fallthrough
		default:
			failed, reasons = append(failed, jobs[i]), append(reasons, r.Failure)
		}
	}
	if len(done) > 0 {
		w.retryRedis(ctx, "complete jobs", func() error {
			errs, err := w.c.Complete(ctx, done, values)
			w.logJobErrors("complete", done, errs)
			return err
		})
	}
	if len(failed) > 0 {
		w.retryRedis(ctx, "fail jobs", func() error {
			errs, err := w.c.FailFinal(ctx, failed, reasons)
			w.logJobErrors("fail", failed, errs)
			return err
		})
	}
}

// retryRedis repeats a Redis acknowledgement until it succeeds or ctx ends. The
// work is already durable, so giving up is safe: the job is then recovered as
// stalled and re-processed, and the idempotent store reports it as a duplicate.
func (w *Worker) retryRedis(ctx context.Context, what string, op func() error) {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return
		}
		w.log.Warn("redis call failed", "op", what, "attempt", attempt, "err", err)
		if !sleep(ctx, w.backoff(attempt)) {
			return
		}
	}
}

func (w *Worker) logJobErrors(op string, jobs []*Job, errs []error) {
	for i, err := range errs {
		if err != nil {
			// A lost lock means another worker took the job over after a stall;
			// its outcome is already durable, so this is only worth a note.
			w.log.Warn("job not acknowledged", "op", op, "job", jobs[i].ID, "err", err)
		}
	}
}

// giveBack returns jobs to wait without counting an attempt (shutdown, or a
// batch that could not be processed before the worker stopped).
func (w *Worker) giveBack(ctx context.Context, jobs []*Job) {
	if err := w.c.MoveToWait(ctx, jobs); err != nil {
		w.log.Warn("could not give jobs back; they will be recovered as stalled", "jobs", len(jobs), "err", err)
	}
}

func (w *Worker) hold(jobs []*Job) {
	w.mu.Lock()
	for _, j := range jobs {
		w.inHand[j.ID] = j
	}
	w.mu.Unlock()
}

func (w *Worker) release(jobs []*Job) {
	w.mu.Lock()
	for _, j := range jobs {
		delete(w.inHand, j.ID)
	}
	w.mu.Unlock()
}

// renewLocks extends the locks of every job in hand, in one call, four times
// per lock duration (as BullMQ does), until ctx ends.
func (w *Worker) renewLocks(ctx context.Context) {
	ticker := time.NewTicker(w.c.opts.LockDuration / 4)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		w.mu.Lock()
		jobs := make([]*Job, 0, len(w.inHand))
		for _, j := range w.inHand {
			jobs = append(jobs, j)
		}
		w.mu.Unlock()
		if len(jobs) == 0 {
			continue
		}
		lost, err := w.c.ExtendLocks(ctx, jobs)
		if err != nil {
			w.log.Warn("lock renewal failed", "jobs", len(jobs), "err", err)
			continue
		}
		// A job acknowledged since the snapshot has no lock any more: not a loss.
		w.mu.Lock()
		stillHeld := lost[:0]
		for _, id := range lost {
			if _, ok := w.inHand[id]; ok {
				stillHeld = append(stillHeld, id)
			}
		}
		w.mu.Unlock()
		if len(stillHeld) > 0 {
			w.log.Warn("locks lost; those jobs may be processed again elsewhere (the store deduplicates)",
				"count", len(stillHeld), "first", stillHeld[0])
		}
	}
}

// checkStalled runs the stalled-job check now and every StalledInterval.
func (w *Worker) checkStalled(ctx context.Context) {
	for {
		recovered, err := w.c.CheckStalled(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("stalled-job check failed", "err", err)
		case len(recovered) > 0:
			w.log.Info("recovered stalled jobs", "queue", w.c.q.Name(), "jobs", len(recovered))
		}
		if !sleep(ctx, w.c.opts.StalledInterval) {
			return
		}
	}
}

// backoff is the wait before the attempt-th retry: doubling, capped, with jitter
// so that many workers do not retry in step.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.opts.RetryBackoffMin << min(attempt-1, 20)
	if d <= 0 || d > w.opts.RetryBackoffMax {
		d = w.opts.RetryBackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
