package bullmq

import (
	"math"
	"math/rand/v2"
	"time"
)

// BackoffDelay decides, for a job whose current attempt just failed, whether it
// is retried and after how long (docs/bullmq-protocol.md). It retries iff attemptsMade+1 <
// opts.attempts and the job carries no deferred failure ("defa"). A zero delay
// means "retry now" (no backoff configured, or a zero backoff delay).
//
// With n = attemptsMade+1 (the attempt that failed): fixed waits delay, exponential
// waits round(delay * 2^(n-1)); a jitter j spreads either over [d*(1-j), d).
// Custom backoff types cannot be evaluated here, so they are never retried;
// Job.Unsupported gives the reason to record.
func BackoffDelay(job *Job) (time.Duration, bool) {
	// attemptsMade+1 >= attempts, written so that no count read from a hash
	// overflows.
	if job.DeferredFailure != "" || job.Opts.Attempts == math.MinInt || job.AttemptsMade >= job.Opts.Attempts-1 {
		return 0, false
	}
	b := job.Opts.Backoff
	if b == nil {
		return 0, true
	}
	var ms float64
	switch b.Type {
	case BackoffFixed:
		ms = float64(b.Delay)
	case BackoffExponential:
		ms = math.Round(float64(b.Delay) * math.Pow(2, float64(job.AttemptsMade)))
	default:
		return 0, false
	}
	if j := math.Min(b.Jitter, 1); j > 0 {
		ms = math.Floor(ms*(1-j) + rand.Float64()*ms*j)
	}
	return msDuration(ms), true
}

// longestDelayMs is the longest delay a time.Duration holds, in milliseconds
// (about 292 years).
const longestDelayMs = math.MaxInt64 / int64(time.Millisecond)

// msDuration turns a delay in milliseconds into a Duration: below zero is
// zero, and past the longest Duration is the longest, where a plain
// conversion would wrap around to a short or negative delay (a large fixed
// delay, or an exponential one after some 30 attempts) and retry at once.
func msDuration(ms float64) time.Duration {
	switch {
	case !(ms > 0): // NaN too
		return 0
	case ms >= float64(longestDelayMs):
		return time.Duration(longestDelayMs) * time.Millisecond
	}
	return time.Duration(ms) * time.Millisecond
}
