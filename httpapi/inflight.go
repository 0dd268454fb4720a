package httpapi

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

const (
	defaultMaxInFlightBytes = 64 << 20
	defaultInFlightWait     = 2 * time.Second
	// releaseInterval is the least time between two returns of memory to the
	// OS: each one is a full garbage collection.
	releaseInterval = 10 * time.Second
)

// Why admission refuses a request.
var (
	errOverBudget = errors.New("request is larger than the ingest budget")
	errBusy       = errors.New("the ingest budget stayed full")
)

// inFlight bounds the bytes of ingest request bodies held at once. A request
// reserves its size before its body is read and gives it back when it has
// been answered, so memory grows with the budget, not with the number of
// clients. Waiting requests are admitted in arrival order.
type inFlight struct {
	budget   int64
	wait     time.Duration
	sem      *semaphore.Weighted
	held     atomic.Int64
	observer IngestObserver // nil: nothing is told
	release  memoryReleaser
}

func newInFlight(budget, maxBody int64, wait time.Duration, observer IngestObserver) *inFlight {
	if budget <= 0 {
		budget = defaultMaxInFlightBytes
	}
	budget = max(budget, maxBody) // a request of the body limit must fit
	if wait <= 0 {
		wait = defaultInFlightWait
	}
	l := &inFlight{budget: budget, wait: wait, sem: semaphore.NewWeighted(budget), observer: observer}
	l.release = memoryReleaser{
		// A burst of a quarter of the budget leaves enough freed memory behind
		// to be worth a collection.
		threshold: budget / 4,
		interval:  releaseInterval,
		idle:      func() bool { return l.held.Load() == 0 },
		free:      debug.FreeOSMemory,
		stop:      make(chan struct{}),
	}
	if observer != nil {
		observer.WatchIngestInFlight(budget, l.held.Load)
		l.release.onFree = observer.MemoryReleased
	}
	return l
}

// acquire reserves n bytes, waiting at most l.wait (and never past ctx). It
// returns errOverBudget when n can never fit, errBusy when the wait ran out,
// or ctx's error when the client went away.
func (l *inFlight) acquire(ctx context.Context, n int64) error {
	if n > l.budget {
		l.refused("too_large")
		return errOverBudget
	}
	waitCtx, cancel := context.WithTimeout(ctx, l.wait)
	defer cancel()
	if err := l.sem.Acquire(waitCtx, n); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.refused("busy")
		return errBusy
	}
	l.release.observe(l.held.Add(n))
	return nil
}

// free gives n reserved bytes back; once nothing is held after a large
// burst, the memory it used is returned to the OS in the background.
func (l *inFlight) free(n int64) {
	held := l.held.Add(-n)
	l.sem.Release(n)
	if held == 0 {
		l.release.maybeRelease()
	}
}

func (l *inFlight) refused(reason string) {
	if l.observer != nil {
		l.observer.IngestRefused(reason)
	}
}

// close stops the background memory release.
func (l *inFlight) close() { l.release.close() }

// memoryReleaser returns freed heap memory to the OS after a burst. The Go
// runtime keeps freed spans for reuse and gives them back only slowly, so a
// burst of large requests would leave the process at its peak size for
// minutes.
type memoryReleaser struct {
	threshold int64         // peak of held bytes that makes a release worth it
	interval  time.Duration // least time between two releases
	idle      func() bool   // no request holds bytes now
	free      func()        // debug.FreeOSMemory
	onFree    func()        // optional: told after each release

	peak     atomic.Int64 // highest held bytes since the last release
	mu       sync.Mutex   // guards last and running
	last     time.Time
	running  bool
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// observe records the bytes held now; it is a compare-and-swap on the
// request path, nothing more.
func (m *memoryReleaser) observe(held int64) {
	for {
		peak := m.peak.Load()
		if held <= peak || m.peak.CompareAndSwap(peak, held) {
			return
		}
	}
}

// maybeRelease starts a release when the peak since the last one was large.
// The release runs in its own goroutine, so no request waits for the
// collection, and no sooner than interval after the previous one.
func (m *memoryReleaser) maybeRelease() {
	if m.peak.Load() < m.threshold {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running {
		return // the pending release covers this burst too
	}
	m.running = true
	m.wg.Add(1)
	go m.run(time.Until(m.last.Add(m.interval)))
}

func (m *memoryReleaser) run(delay time.Duration) {
	defer m.wg.Done()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-m.stop:
			m.done(false)
			return
		}
	}
	if !m.idle() {
		// A new burst is under way; the moment it ends starts another release.
		m.done(false)
		return
	}
	m.peak.Store(0)
	m.free()
	if m.onFree != nil {
		m.onFree()
	}
	m.done(true)
}

func (m *memoryReleaser) done(freed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running = false
	if freed {
		m.last = time.Now()
	}
}

// close stops a release waiting for its turn and waits for one in progress.
func (m *memoryReleaser) close() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.wg.Wait()
}
