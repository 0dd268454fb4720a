package health

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Checker; zero values take the defaults.
type Options struct {
	// Timeout bounds each check; default 2s. A check still running then is
	// reported CRITICAL "timed out after <Timeout>".
	Timeout time.Duration
	// TTL is how long a component's result is reused; default 1s, negative
	// disables caching (every call runs the check, concurrent callers still
	// share one run).
	TTL time.Duration
	// Thresholds start as DefaultThresholds when nil; see SetThresholds.
	Thresholds *Thresholds
	// Now is the clock for caching and LastCheck (tests); default time.Now.
	Now func() time.Time
}

// Checker runs named component checks. Each component is checked on its own:
// a slow check never delays another, callers arriving while a check runs wait
// for that run instead of starting their own, and a result is reused for the
// TTL, so load balancers polling often cost the dependencies nothing extra.
// It is safe for concurrent use.
type Checker struct {
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time

	thresholds atomic.Pointer[Thresholds]
	generation atomic.Uint64 // bumped by SetThresholds so cached results are recomputed

	mu         sync.RWMutex
	components map[string]*component
}

// component is one named check with its cache and its run in flight.
type component struct {
	check Check

	mu        sync.Mutex
	cached    Result
	cachedGen uint64
	expires   time.Time // zero: nothing cached
	inflight  *flight
	abandoned bool // a run that timed out has not returned yet
}

// flight is one run of a check, shared by every caller that asked meanwhile.
type flight struct {
	done chan struct{} // closed once res is set
	res  Result
}

// NewChecker returns a Checker with no components; add them with Add.
func NewChecker(opts Options) *Checker {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.TTL == 0 {
		opts.TTL = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Checker{timeout: opts.Timeout, ttl: opts.TTL, now: opts.Now, components: map[string]*component{}}
	t := DefaultThresholds()
	if opts.Thresholds != nil {
		t = opts.Thresholds.withDefaults()
	}
	c.thresholds.Store(&t)
	return c
}

// Add registers a component check under name, replacing one of the same name.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.components[name] = &component{check: check}
}

// Names returns the registered component names, sorted.
func (c *Checker) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.components))
	for n := range c.components {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Thresholds returns the thresholds in force; checks built by Queue and
// Processing read them through this method on every run.
func (c *Checker) Thresholds() Thresholds { return *c.thresholds.Load() }

// SetThresholds replaces the thresholds (configuration reload); results cached
// under the old ones are not reused.
func (c *Checker) SetThresholds(t Thresholds) {
	t = t.withDefaults()
	c.thresholds.Store(&t)
	c.generation.Add(1)
}

// Check returns one component's health; false when no such component exists.
func (c *Checker) Check(ctx context.Context, name string) (Result, bool) {
	c.mu.RLock()
	comp, ok := c.components[name]
	c.mu.RUnlock()
	if !ok {
		return Result{}, false
	}
	return c.result(ctx, comp), true
}

// CheckAll checks every component in parallel and folds them into a report:
// CRITICAL if any is CRITICAL, else WARNING if any is WARNING, else OK.
func (c *Checker) CheckAll(ctx context.Context) Report {
	c.mu.RLock()
	comps := make(map[string]*component, len(c.components))
	for n, comp := range c.components {
		comps[n] = comp
	}
	c.mu.RUnlock()

	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		rep = Report{Status: StatusOK, Components: make(map[string]Result, len(comps))}
	)
	for name, comp := range comps {
		wg.Go(func() {
			r := c.result(ctx, comp)
			mu.Lock()
			rep.Components[name] = r
			rep.Status = Worse(rep.Status, r.Status)
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.Timestamp = c.now().UTC()
	return rep
}

// result returns the cached result while it is fresh, else joins or starts a
// run. The caller stops waiting when ctx ends; the run goes on for the others.
func (c *Checker) result(ctx context.Context, comp *component) Result {
	gen := c.generation.Load()
	comp.mu.Lock()
	if !comp.expires.IsZero() && comp.cachedGen == gen && c.now().Before(comp.expires) {
		r := comp.cached
		comp.mu.Unlock()
		return r
	}
	f := comp.inflight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		comp.inflight = f
		// The run must not die with the first caller's request: others wait on it.
		go c.refresh(context.WithoutCancel(ctx), comp, f, gen)
	}
	comp.mu.Unlock()
	select {
	case <-f.done:
		return f.res
	case <-ctx.Done():
		return Result{Status: StatusCritical, Message: "health check abandoned: " + ctx.Err().Error(), LastCheck: c.now().UTC()}
	}
}

// refresh runs the check once, stores the result and wakes the waiters.
func (c *Checker) refresh(ctx context.Context, comp *component, f *flight, gen uint64) {
	start := time.Now()
	comp.mu.Lock()
	abandoned := comp.abandoned
	comp.mu.Unlock()
	var r Result
	if abandoned {
		// Starting another run would pile up goroutines behind a hung dependency.
		r = Result{Status: StatusCritical, Message: fmt.Sprintf("timed out after %s (the previous check has still not returned)", c.timeout)}
	} else {
		r = c.run(ctx, comp)
	}
	r.ResponseTime = time.Since(start).Milliseconds()
	r.LastCheck = c.now().UTC()

	comp.mu.Lock()
	if c.ttl > 0 {
		comp.cached, comp.cachedGen, comp.expires = r, gen, c.now().Add(c.ttl)
	}
	comp.inflight = nil
	comp.mu.Unlock()
	f.res = r
	close(f.done)
}

// run calls the check with the timeout. A check that ignores its context is
// left behind (marked abandoned until it returns) rather than waited for.
func (c *Checker) run(ctx context.Context, comp *component) Result {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	done := make(chan Result, 1)
	go func() { done <- call(ctx, comp.check) }()
	timedOut := Result{Status: StatusCritical, Message: fmt.Sprintf("timed out after %s", c.timeout)}
	select {
	case r := <-done:
		late := ctx.Err() != nil
		cancel()
		if late && r.Status != StatusOK {
			return timedOut // it failed because the deadline passed
		}
		return r
	case <-ctx.Done():
		comp.mu.Lock()
		comp.abandoned = true
		comp.mu.Unlock()
		go func() {
			<-done
			cancel()
			comp.mu.Lock()
			comp.abandoned = false
			comp.mu.Unlock()
		}()
		return timedOut
	}
}

// call runs a check, turning a panic or a missing status into CRITICAL.
func call(ctx context.Context, check Check) (r Result) {
	defer func() {
		if p := recover(); p != nil {
			r = Result{Status: StatusCritical, Message: fmt.Sprintf("health check panicked: %v", p)}
		}
	}()
	r = check(ctx)
	if r.Status.severity() == 2 && r.Status != StatusCritical {
		r = Result{Status: StatusCritical, Message: fmt.Sprintf("health check returned status %q", r.Status), Details: r.Details}
	}
	return r
}
