package testenv

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start, calls := time.Now(), 0
		Eventually(t, time.Second, "the third call", func() bool { calls++; return calls == 3 })
		// Checks at 0, 1 ms and 3 ms: the interval doubles from a millisecond.
		if took := time.Since(start); calls != 3 || took != 3*time.Millisecond {
			t.Errorf("returned after %d calls and %s, want 3 and 3ms", calls, took)
		}
	})
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as testing.T's does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs wait on a fatalRecorder in a bubble and returns the failure
// message and how long (in the bubble's time) the wait took.
func failure(t *testing.T, wait func(tb testing.TB)) (msg string, took time.Duration) {
	synctest.Test(t, func(t *testing.T) {
		rec := &fatalRecorder{}
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); wait(rec) }()
		<-done
		msg, took = rec.msg, time.Since(start)
	})
	return msg, took
}

func TestEventuallyFailsAtTheTimeout(t *testing.T) {
	msg, took := failure(t, func(tb testing.TB) {
		Eventually(tb, time.Second, "the queue to drain", func() bool { return false })
	})
	if want := "gave up after 1s waiting for the queue to drain"; msg != want || took != time.Second {
		t.Errorf("failed with %q after %s, want %q after 1s", msg, took, want)
	}
}

func TestEventuallyNilFailsWithTheLastError(t *testing.T) {
	var last error
	msg, took := failure(t, func(tb testing.TB) {
		n := 0
		EventuallyNil(tb, 100*time.Millisecond, func() error { n++; last = fmt.Errorf("%d jobs left", n); return last })
	})
	if want := "gave up after 100ms: " + last.Error(); msg != want || took != 100*time.Millisecond {
		t.Errorf("failed with %q after %s, want %q after 100ms", msg, took, want)
	}
}

// A check that takes time is followed by a wait at least as long.
func TestUntilWaitsAsLongAsTheCheckTook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Duration
		start := time.Now()
		held := Until(time.Second, func() bool {
			at = append(at, time.Since(start))
			time.Sleep(100 * time.Millisecond) // a costly check
			return len(at) == 3
		})
		want := []time.Duration{0, 200 * time.Millisecond, 400 * time.Millisecond}
		if !held || !slices.Equal(at, want) {
			t.Errorf("held %v, checks at %v; want true, %v", held, at, want)
		}
	})
}

func TestUntilReportsATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if Until(50*time.Millisecond, func() bool { return false }) || time.Since(start) != 50*time.Millisecond {
			t.Errorf("Until of a condition that never holds returned true or after %s, want false after 50ms", time.Since(start))
		}
	})
}
