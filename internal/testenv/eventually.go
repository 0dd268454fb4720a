package testenv

import (
	"testing"
	"time"
)

// maxPollInterval bounds the wait between two checks while they are cheap:
// the interval starts at a millisecond, so a condition that holds soon is
// seen at once, and doubles up to this, so a long wait does not keep a core busy.
const maxPollInterval = 20 * time.Millisecond

// Until checks cond until it holds or timeout passes, and reports whether it
// held. Between two checks it waits at least as long as the last check took,
// so a costly check (a subprocess, a count over a table) takes at most half
// of a core. Inside a testing/synctest bubble the waits take no real time.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		start := time.Now()
		if cond() {
			return true
		}
		took := time.Since(start)
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(max(interval, took), left))
		interval = min(2*interval, maxPollInterval)
	}
}

// Eventually checks cond until it holds (see Until) and fails the test if it
// still does not after timeout; what names the awaited condition.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(timeout, cond) {
		tb.Fatalf("gave up after %s waiting for %s", timeout, what)
	}
}

// EventuallyNil calls check until it returns nil (see Until) and fails the
// test with its last error if that has not happened after timeout: check
// says what it waits for and what it saw instead.
func EventuallyNil(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	var err error
	if !Until(timeout, func() bool { err = check(); return err == nil }) {
		tb.Fatalf("gave up after %s: %v", timeout, err)
	}
}
