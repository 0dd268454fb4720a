package health

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

func fixed(s Status) Check {
	return func(context.Context) Result { return Result{Status: s, Message: string(s)} }
}

// counting returns a check that counts its runs and reports the run number.
func counting(n *atomic.Int64) Check {
	return func(context.Context) Result {
		return Result{Status: StatusOK, Details: map[string]any{"run": n.Add(1)}}
	}
}

func TestOverallStatus(t *testing.T) {
	for _, tc := range []struct {
		statuses []Status
		want     Status
	}{
		{nil, StatusOK},
		{[]Status{StatusOK, StatusOK}, StatusOK},
		{[]Status{StatusOK, StatusWarning}, StatusWarning},
		{[]Status{StatusWarning, StatusCritical, StatusOK}, StatusCritical},
		{[]Status{StatusCritical, StatusWarning}, StatusCritical},
	} {
		c := NewChecker(Options{})
		for i, s := range tc.statuses {
			c.Add(string(rune('a'+i)), fixed(s))
		}
		rep := c.CheckAll(context.Background())
		if rep.Status != tc.want || len(rep.Components) != len(tc.statuses) {
			t.Errorf("%v: overall %s with %d components, want %s", tc.statuses, rep.Status, len(rep.Components), tc.want)
		}
		for i, s := range tc.statuses {
			if got := rep.Components[string(rune('a'+i))]; got.Status != s || got.LastCheck.IsZero() {
				t.Errorf("%v: component %d = %+v", tc.statuses, i, got)
			}
		}
	}
}

func TestCheckByNameAndNames(t *testing.T) {
	c := NewChecker(Options{})
	c.Add("redis", fixed(StatusWarning))
	c.Add("database", fixed(StatusOK))
	if got := c.Names(); strings.Join(got, ",") != "database,redis" {
		t.Errorf("Names = %v", got)
	}
	if r, ok := c.Check(context.Background(), "redis"); !ok || r.Status != StatusWarning || r.Message != "WARNING" {
		t.Errorf("redis = %+v, %v", r, ok)
	}
	if _, ok := c.Check(context.Background(), "queue"); ok {
		t.Error("unknown component reported as found")
	}
}

func TestPanicAndMissingStatusAreCritical(t *testing.T) {
	c := NewChecker(Options{})
	c.Add("panics", func(context.Context) Result { panic("boom") })
	c.Add("empty", func(context.Context) Result { return Result{} })
	rep := c.CheckAll(context.Background())
	if r := rep.Components["panics"]; r.Status != StatusCritical || !strings.Contains(r.Message, "boom") {
		t.Errorf("panicking check = %+v", r)
	}
	if r := rep.Components["empty"]; r.Status != StatusCritical {
		t.Errorf("check without status = %+v", r)
	}
	if rep.Status != StatusCritical {
		t.Errorf("overall = %s", rep.Status)
	}
}

// A check that hangs (and ignores its context) is reported as timed out, and
// neither delays the other components nor is started again while still hung.
func TestSlowCheckTimesOutWithoutBlockingOthers(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var slowRuns atomic.Int64
	clock := testenv.NewClock(time.Unix(1000, 0))
	c := NewChecker(Options{Timeout: 100 * time.Millisecond, Now: clock.Now})
	c.Add("slow", func(context.Context) Result {
		slowRuns.Add(1)
		<-release // ignores ctx on purpose
		return Result{Status: StatusOK}
	})
	c.Add("fast", fixed(StatusOK))

	// If "fast" waited for "slow", this would only end with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan Report)
	go func() { done <- c.CheckAll(ctx) }()
	if r, _ := c.Check(ctx, "fast"); r.Status != StatusOK {
		t.Fatalf("fast check while slow one hangs = %+v", r)
	}
	rep := <-done
	if ctx.Err() != nil {
		t.Fatal("CheckAll waited for the hung check instead of timing out")
	}
	slow := rep.Components["slow"]
	if slow.Status != StatusCritical || slow.Message != "timed out after 100ms" || slow.ResponseTime < 100 {
		t.Errorf("slow = %+v", slow)
	}
	if rep.Components["fast"].Status != StatusOK || rep.Status != StatusCritical {
		t.Errorf("report = %+v", rep)
	}

	// After the TTL the hung run has not returned: no second goroutine piles up.
	clock.Add(2 * time.Second)
	r, _ := c.Check(ctx, "slow")
	if r.Status != StatusCritical || !strings.Contains(r.Message, "still not returned") {
		t.Errorf("slow while hung = %+v", r)
	}
	if n := slowRuns.Load(); n != 1 {
		t.Errorf("hung check started %d times, want 1", n)
	}
}

// A check that honours its context and fails because of the deadline is
// reported as a timeout, not as its own error.
func TestDeadlineErrorReportedAsTimeout(t *testing.T) {
	c := NewChecker(Options{Timeout: 20 * time.Millisecond})
	c.Add("db", func(ctx context.Context) Result {
		<-ctx.Done()
		return Result{Status: StatusCritical, Message: ctx.Err().Error()}
	})
	if r, _ := c.Check(context.Background(), "db"); r.Status != StatusCritical || r.Message != "timed out after 20ms" {
		t.Errorf("result = %+v", r)
	}
}

func TestResultCachedForTTL(t *testing.T) {
	clock := testenv.NewClock(time.Unix(1000, 0))
	var runs atomic.Int64
	c := NewChecker(Options{TTL: time.Second, Now: clock.Now})
	c.Add("db", counting(&runs))
	ctx := context.Background()
	for range 3 {
		c.Check(ctx, "db")
		c.CheckAll(ctx)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs within the TTL, want 1", n)
	}
	clock.Add(999 * time.Millisecond)
	c.Check(ctx, "db")
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs just before the TTL ends, want 1", n)
	}
	clock.Add(time.Millisecond)
	r, _ := c.Check(ctx, "db")
	if n := runs.Load(); n != 2 || r.Details["run"] != int64(2) {
		t.Fatalf("after the TTL: %d runs, result %+v; want a second run", n, r)
	}
}

func TestNegativeTTLDisablesCache(t *testing.T) {
	var runs atomic.Int64
	c := NewChecker(Options{TTL: -1})
	c.Add("db", counting(&runs))
	for range 3 {
		c.Check(context.Background(), "db")
	}
	if n := runs.Load(); n != 3 {
		t.Errorf("%d runs without cache, want 3", n)
	}
}

// Callers arriving while a check runs share that run. The cache is off, so
// only the sharing can keep the count at one.
func TestConcurrentCallersShareOneRun(t *testing.T) {
	var runs atomic.Int64
	started := make(chan struct{})
	release := make(chan struct{})
	c := NewChecker(Options{TTL: -1, Timeout: 10 * time.Second})
	c.Add("db", func(context.Context) Result {
		if runs.Add(1) == 1 {
			close(started)
		}
		<-release
		return Result{Status: StatusOK, Details: map[string]any{"run": runs.Load()}}
	})
	const callers = 20
	results := make(chan Result, callers)
	var ready sync.WaitGroup
	ready.Add(callers)
	for range callers {
		go func() {
			ready.Done()
			r, _ := c.Check(context.Background(), "db")
			results <- r
		}()
	}
	ready.Wait()
	<-started
	time.Sleep(200 * time.Millisecond) // let every caller reach the shared run
	close(release)
	for range callers {
		if r := <-results; r.Status != StatusOK || r.Details["run"] != int64(1) {
			t.Errorf("caller got %+v, want the result of run 1", r)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs for %d concurrent callers, want 1", n, callers)
	}
}

// A caller whose context ends stops waiting; the run goes on for the others.
func TestCallerCancelDoesNotCancelSharedRun(t *testing.T) {
	release := make(chan struct{})
	c := NewChecker(Options{Timeout: 10 * time.Second})
	c.Add("db", func(ctx context.Context) Result {
		select {
		case <-release:
			return Result{Status: StatusOK}
		case <-ctx.Done():
			return Result{Status: StatusCritical, Message: "cancelled"}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan Result)
	go func() { r, _ := c.Check(ctx, "db"); first <- r }()
	second := make(chan Result)
	go func() { r, _ := c.Check(context.Background(), "db"); second <- r }()
	cancel()
	if r := <-first; r.Status != StatusCritical || !strings.Contains(r.Message, "abandoned") {
		t.Errorf("cancelled caller = %+v", r)
	}
	close(release)
	if r := <-second; r.Status != StatusOK {
		t.Errorf("other caller = %+v, want the run to have finished normally", r)
	}
}

func TestSetThresholds(t *testing.T) {
	clock := testenv.NewClock(time.Unix(1000, 0))
	c := NewChecker(Options{Now: clock.Now})
	if c.Thresholds() != DefaultThresholds() {
		t.Fatalf("initial thresholds %+v", c.Thresholds())
	}
	c.Add("queue", Queue(func(context.Context) (map[string]int64, error) {
		return map[string]int64{"wait": 150}, nil
	}, c.Thresholds))
	ctx := context.Background()
	if r, _ := c.Check(ctx, "queue"); r.Status != StatusWarning {
		t.Fatalf("150 waiting with threshold 100: %+v", r)
	}
	// The clock stands still: a new result can only come from the replaced thresholds.
	c.SetThresholds(Thresholds{ErrorRate: 0.1, QueueDepth: 200, ProcessingLatency: time.Second})
	if r, _ := c.Check(ctx, "queue"); r.Status != StatusOK {
		t.Errorf("150 waiting with threshold 200: %+v", r)
	}
	c.SetThresholds(Thresholds{QueueDepth: 30})
	if r, _ := c.Check(ctx, "queue"); r.Status != StatusCritical {
		t.Errorf("150 waiting with threshold 30: %+v", r)
	}
	if got := c.Thresholds(); got.QueueDepth != 30 || got.ProcessingLatency != 5*time.Second || got.ErrorRate != 0 {
		t.Errorf("thresholds after partial set = %+v (latency defaulted, error rate 0 kept)", got)
	}

	// Replacing thresholds while checks run is safe (run with -race).
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { c.SetThresholds(Thresholds{QueueDepth: int64(i + 1)}) })
		wg.Go(func() { c.CheckAll(ctx) })
	}
	wg.Wait()
}
