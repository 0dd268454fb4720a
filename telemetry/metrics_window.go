package telemetry

import (
	"math"
	"slices"
	"sync"
	"time"
)

// The recent-window statistics behind the dashboard, which Prometheus keeps as
// counters and histograms since start: fixed-size rings, so memory stays bounded
// whatever the traffic, updated once per batch under one lock.
const (
	hourSeconds        = 3600 // peak throughput: the busiest second of the last hour
	recentSeconds      = 60   // throughput, error rate and latency: the last minute
	latencySamples     = 8192
	maxSamplesPerBatch = 256 // so that one big batch cannot fill the latency sample alone
)

// RecentError is one recent failure, for the dashboard. It never holds an
// event's content (which may be personal data): only what kind of failure it
// was, the reason and, for a refused event, its first failing field and code.
type RecentError struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`             // rejected, store_failure, circuit_breaker, queue_sample
	Reason  string    `json:"reason,omitempty"` // rejected: validation_failed or integrity_violation
	Field   string    `json:"field,omitempty"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
}

type secondStats struct {
	sec        int64 // the Unix second the slot holds; slots are reused round the ring
	received   int64
	errors     int64 // rejected events and events of failed store batches
	maxLatency time.Duration
}

type latencySample struct {
	sec int64
	lat time.Duration
}

type totals struct {
	received, stored, duplicates, rejected, failedEvents int64
}

type window struct {
	mu         sync.Mutex
	secs       [hourSeconds]secondStats
	samples    [latencySamples]latencySample
	nextSample int
	errs       []RecentError // ring
	nextErr    int
	nErrs      int
	totals     totals
}

func newWindow(recentErrors int) *window {
	return &window{errs: make([]RecentError, recentErrors)}
}

// bucket returns the slot of now's second, cleared if it held an older second.
func (w *window) bucket(now time.Time) *secondStats {
	sec := now.Unix()
	b := &w.secs[sec%hourSeconds]
	if b.sec != sec {
		*b = secondStats{sec: sec}
	}
	return b
}

func (w *window) addSample(sec int64, lat time.Duration) {
	w.samples[w.nextSample] = latencySample{sec: sec, lat: lat}
	w.nextSample = (w.nextSample + 1) % len(w.samples)
}

func (w *window) addError(e RecentError) {
	w.errs[w.nextErr] = e
	w.nextErr = (w.nextErr + 1) % len(w.errs)
	w.nErrs = min(w.nErrs+1, len(w.errs))
}

// windowStats is a snapshot of the window.
type windowStats struct {
	totals         totals
	recentReceived int64   // events in the last minute
	recentErrors   int64   // of which failed
	recentSeconds  float64 // seconds the last minute covers (less just after start)
	hourReceived   int64
	hourSeconds    float64
	peakPerSecond  int64
	latencies      []time.Duration // sampled over the last minute, sorted
	maxLatency     time.Duration   // exact, over the last minute
	errors         []RecentError   // newest first
}

// stats summarises the window at now, for a process started at start.
func (w *window) stats(now, start time.Time) windowStats {
	nowSec := now.Unix()
	up := max(now.Sub(start).Seconds(), 1)
	s := windowStats{recentSeconds: min(up, recentSeconds), hourSeconds: min(up, hourSeconds)}
	w.mu.Lock()
	defer w.mu.Unlock()
	s.totals = w.totals
	for i := range w.secs {
		b := &w.secs[i]
		age := nowSec - b.sec
		if age < 0 || age >= hourSeconds || b.sec == 0 {
			continue
		}
		s.hourReceived += b.received
		s.peakPerSecond = max(s.peakPerSecond, b.received)
		if age < recentSeconds {
			s.recentReceived += b.received
			s.recentErrors += b.errors
			s.maxLatency = max(s.maxLatency, b.maxLatency)
		}
	}
	for _, smp := range w.samples {
		if age := nowSec - smp.sec; smp.sec != 0 && age >= 0 && age < recentSeconds {
			s.latencies = append(s.latencies, smp.lat)
		}
	}
	slices.Sort(s.latencies)
	s.errors = make([]RecentError, 0, w.nErrs)
	for i := 1; i <= w.nErrs; i++ {
		s.errors = append(s.errors, w.errs[(w.nextErr-i+len(w.errs))%len(w.errs)])
	}
	return s
}

// errorRate is the share of the last minute's events that failed.
func (s windowStats) errorRate() float64 {
	if s.recentReceived == 0 {
		return 0
	}
	return float64(s.recentErrors) / float64(s.recentReceived)
}

// nearestRank is the nearest-rank percentile (the original's rule: the element
// at ceil(n·p) − 1 of the sorted values), 0 without values.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*p-1e-9)) - 1 // the epsilon absorbs 0.95·100 = 95.000…01
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// RecentStats summarise the last minute, for health checks and system alerts.
type RecentStats struct {
	Events       int64   // events received
	ErrorRate    float64 // share of them rejected or lost to a failed store batch
	LatencyP95Ms float64 // enqueue→commit, of the events stored
}

// Recent returns the last minute's statistics.
func (m *Metrics) Recent() RecentStats {
	w := m.win.stats(m.now(), m.start)
	return RecentStats{Events: w.recentReceived, ErrorRate: w.errorRate(), LatencyP95Ms: msOf(nearestRank(w.latencies, 0.95))}
}
