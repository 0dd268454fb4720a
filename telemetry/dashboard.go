package telemetry

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

// System statuses of the dashboard overview.
const (
	StatusHealthy  = "HEALTHY"
	StatusDegraded = "DEGRADED"
	StatusCritical = "CRITICAL"
)

// Thresholds decide the dashboard's system status. Reaching a threshold is
// CRITICAL; reaching half of it is DEGRADED (the original's 5 %/10 % error rate
// levels). Zero fields take the defaults of monitoring.alertThresholds.
type Thresholds struct {
	ErrorRate float64 `json:"errorRate"` // share of the last minute's events that failed; default 0.1
	// ProcessingLatencyMs applies to the p95 of the last minute's enqueue→commit
	// latency, which includes time waiting in the queue; default 5000.
	ProcessingLatencyMs int64 `json:"processingLatencyMs"`
}

func (t Thresholds) withDefaults() Thresholds {
	if t.ErrorRate <= 0 {
		t.ErrorRate = 0.1
	}
	if t.ProcessingLatencyMs <= 0 {
		t.ProcessingLatencyMs = 5000
	}
	return t
}

// DashboardOptions configure a Dashboard; only Metrics is required.
type DashboardOptions struct {
	Metrics *Metrics
	// Breaker reports the circuit breaker's state (pipeline.Breaker.State);
	// without it the dashboard shows the last transition Metrics saw.
	Breaker func() pipeline.BreakerState
	// Alerts counts the stored alerts (audit.AlertStore.AlertStatistics);
	// without it the alerts section is null.
	Alerts     func(ctx context.Context) (audit.AlertStatistics, error)
	Thresholds Thresholds
}

// Dashboard builds the observability documents from Metrics: the dashboard,
// the enhanced metrics and the bottleneck analysis.
type Dashboard struct {
	m          *Metrics
	breaker    func() pipeline.BreakerState
	alerts     func(ctx context.Context) (audit.AlertStatistics, error)
	thresholds atomic.Pointer[Thresholds]
}

// NewDashboard returns a dashboard over opts.Metrics.
func NewDashboard(opts DashboardOptions) *Dashboard {
	d := &Dashboard{m: opts.Metrics, breaker: opts.Breaker, alerts: opts.Alerts}
	if d.breaker == nil {
		d.breaker = opts.Metrics.BreakerState
	}
	d.SetThresholds(opts.Thresholds)
	return d
}

// SetThresholds changes the status thresholds (configuration reload).
func (d *Dashboard) SetThresholds(t Thresholds) {
	t = t.withDefaults()
	d.thresholds.Store(&t)
}

// Thresholds returns the thresholds in use.
func (d *Dashboard) Thresholds() Thresholds { return *d.thresholds.Load() }

// DashboardData is the document served at /observability/dashboard.
type DashboardData struct {
	Overview       Overview       `json:"overview"`
	Throughput     Throughput     `json:"throughput"`
	Latency        Latency        `json:"latency"`
	Stages         []StageAverage `json:"stages"`
	Queue          QueueStatus    `json:"queue"`
	CircuitBreaker BreakerStatus  `json:"circuitBreaker"`
	RecentErrors   []RecentError  `json:"recentErrors"` // newest first
	Alerts         *AlertsSummary `json:"alerts"`       // null when alerts are not configured
	Runtime        RuntimeStats   `json:"runtime"`
	Thresholds     Thresholds     `json:"thresholds"`
	Timestamp      time.Time      `json:"timestamp"`
}

// Overview sums up the worker since start and over the last minute.
type Overview struct {
	TotalEvents     int64   `json:"totalEvents"` // handed to the pipeline since start
	StoredEvents    int64   `json:"storedEvents"`
	DuplicateEvents int64   `json:"duplicateEvents"`
	RejectedEvents  int64   `json:"rejectedEvents"`
	FailedEvents    int64   `json:"failedEvents"`    // in batches the store failed (counted per attempt)
	EventsPerSecond float64 `json:"eventsPerSecond"` // over the last minute
	ErrorRate       float64 `json:"errorRate"`       // over the last minute
	UptimeSeconds   float64 `json:"uptime"`
	SystemStatus    string  `json:"systemStatus"` // HEALTHY, DEGRADED or CRITICAL
	// StatusReasons say why the status is not HEALTHY.
	StatusReasons []string `json:"statusReasons"`
}

// Throughput is in events per second.
type Throughput struct {
	Current float64 `json:"current"` // over the last minute
	Peak    float64 `json:"peak"`    // the busiest second of the last hour
	Average float64 `json:"average"` // over the last hour
}

// Latency is the enqueue→commit latency of stored events over the last minute,
// in milliseconds; the percentiles come from a bounded sample, Max is exact.
type Latency struct {
	P50           float64 `json:"p50"`
	P95           float64 `json:"p95"`
	P99           float64 `json:"p99"`
	Max           float64 `json:"max"`
	Samples       int     `json:"samples"`
	WindowSeconds int     `json:"windowSeconds"`
}

// StageAverage is a stage's average time per batch since start.
type StageAverage struct {
	Stage     string  `json:"stage"`
	Batches   uint64  `json:"batches"`
	AverageMs float64 `json:"averageMs"`
}

// QueueStatus is the last sample of the queue depths.
type QueueStatus struct {
	Depths    map[string]int64 `json:"depths"`    // by state; empty before the first sample
	SampledAt *time.Time       `json:"sampledAt"` // null before the first sample
	Error     string           `json:"error,omitempty"`
}

// BreakerStatus is the circuit breaker's state.
type BreakerStatus struct {
	State pipeline.BreakerState `json:"state"`
}

// AlertsSummary counts the stored alerts; Error says why they could not be counted.
type AlertsSummary struct {
	*audit.AlertStatistics
	Error string `json:"error,omitempty"`
}

// RuntimeStats describe the Go runtime.
type RuntimeStats struct {
	Goroutines     int     `json:"goroutines"`
	HeapAllocBytes uint64  `json:"heapAllocBytes"`
	HeapSysBytes   uint64  `json:"heapSysBytes"`
	HeapObjects    uint64  `json:"heapObjects"`
	GCCycles       uint32  `json:"gcCycles"`
	LastGCPauseMs  float64 `json:"lastGcPauseMs"`
	GCPauseTotalMs float64 `json:"gcPauseTotalMs"`
	NumCPU         int     `json:"numCpu"`
	GoVersion      string  `json:"goVersion"`
}

// Build assembles the dashboard.
func (d *Dashboard) Build(ctx context.Context) DashboardData {
	now := d.m.now()
	w := d.m.win.stats(now, d.m.start)
	th := d.Thresholds()
	breaker := d.breaker()
	lat, tp := latencyOf(w), throughputOf(w)
	data := DashboardData{
		Overview: Overview{
			TotalEvents: w.totals.received, StoredEvents: w.totals.stored, DuplicateEvents: w.totals.duplicates,
			RejectedEvents: w.totals.rejected, FailedEvents: w.totals.failedEvents,
			EventsPerSecond: tp.Current, ErrorRate: roundTo(w.errorRate(), 4),
			UptimeSeconds: roundTo(now.Sub(d.m.start).Seconds(), 3),
		},
		Throughput:     tp,
		Latency:        lat,
		Stages:         stageAverages(d.m.StageTimings()),
		Queue:          d.queueStatus(),
		CircuitBreaker: BreakerStatus{State: breaker},
		RecentErrors:   w.errors,
		Alerts:         d.alertsSummary(ctx),
		Runtime:        runtimeStats(),
		Thresholds:     th,
		Timestamp:      now.UTC(),
	}
	data.Overview.SystemStatus, data.Overview.StatusReasons = systemStatus(th, w.errorRate(), breaker, lat.P95)
	return data
}

// systemStatus derives HEALTHY, DEGRADED or CRITICAL and the reasons for it.
func systemStatus(th Thresholds, errorRate float64, breaker pipeline.BreakerState, p95Ms float64) (string, []string) {
	var critical, degraded []string
	switch {
	case errorRate >= th.ErrorRate:
		critical = append(critical, fmt.Sprintf("error rate %.1f%% is at or above %.1f%%", errorRate*100, th.ErrorRate*100))
	case errorRate >= th.ErrorRate/2:
		degraded = append(degraded, fmt.Sprintf("error rate %.1f%% is at or above %.1f%%", errorRate*100, th.ErrorRate*50))
	}
	switch breaker {
	case pipeline.BreakerOpen:
		critical = append(critical, "circuit breaker is open: the store is failing")
	case pipeline.BreakerHalfOpen:
		degraded = append(degraded, "circuit breaker is half-open: probing the store")
	}
	limit := float64(th.ProcessingLatencyMs)
	switch {
	case p95Ms >= limit:
		critical = append(critical, fmt.Sprintf("p95 latency %.0f ms is at or above %.0f ms", p95Ms, limit))
	case p95Ms >= limit/2:
		degraded = append(degraded, fmt.Sprintf("p95 latency %.0f ms is at or above %.0f ms", p95Ms, limit/2))
	}
	switch {
	case len(critical) > 0:
		return StatusCritical, append(critical, degraded...)
	case len(degraded) > 0:
		return StatusDegraded, degraded
	}
	return StatusHealthy, []string{}
}

func throughputOf(w windowStats) Throughput {
	return Throughput{
		Current: roundTo(float64(w.recentReceived)/w.recentSeconds, 3),
		Peak:    float64(w.peakPerSecond),
		Average: roundTo(float64(w.hourReceived)/w.hourSeconds, 3),
	}
}

func latencyOf(w windowStats) Latency {
	return Latency{
		P50: msOf(nearestRank(w.latencies, 0.50)), P95: msOf(nearestRank(w.latencies, 0.95)),
		P99: msOf(nearestRank(w.latencies, 0.99)), Max: msOf(w.maxLatency),
		Samples: len(w.latencies), WindowSeconds: recentSeconds,
	}
}

// stageAverages lists the stages in pipeline order.
func stageAverages(timings []StageTiming) []StageAverage {
	order := []string{pipeline.StageValidate, pipeline.StageVerify, pipeline.StageStore, StageAck}
	slices.SortFunc(timings, func(a, b StageTiming) int {
		return stageRank(order, a.Stage) - stageRank(order, b.Stage)
	})
	out := make([]StageAverage, 0, len(timings))
	for _, t := range timings {
		out = append(out, StageAverage{Stage: t.Stage, Batches: t.Batches, AverageMs: msOf(t.Average())})
	}
	return out
}

func stageRank(order []string, s string) int {
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

func (d *Dashboard) queueStatus() QueueStatus {
	depths, at := d.m.QueueDepths()
	q := QueueStatus{Depths: depths, Error: d.m.queueSampleError()}
	if q.Depths == nil {
		q.Depths = map[string]int64{}
	}
	if !at.IsZero() {
		at = at.UTC()
		q.SampledAt = &at
	}
	return q
}

// alertsSummary counts alerts, bounded in time: the dashboard must answer
// even when the alert store is slow.
func (d *Dashboard) alertsSummary(ctx context.Context) *AlertsSummary {
	if d.alerts == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stats, err := d.alerts(ctx)
	if err != nil {
		d.m.log.Warn("dashboard: count alerts", "err", err)
		return &AlertsSummary{Error: "alert statistics unavailable: " + clipText(err.Error(), maxErrorMessage)}
	}
	return &AlertsSummary{AlertStatistics: &stats}
}

func runtimeStats() RuntimeStats {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	return RuntimeStats{
		Goroutines: runtime.NumGoroutine(), HeapAllocBytes: mem.HeapAlloc, HeapSysBytes: mem.HeapSys,
		HeapObjects: mem.HeapObjects, GCCycles: mem.NumGC,
		LastGCPauseMs:  float64(mem.PauseNs[(mem.NumGC+255)%256]) / 1e6,
		GCPauseTotalMs: float64(mem.PauseTotalNs) / 1e6,
		NumCPU:         runtime.NumCPU(), GoVersion: runtime.Version(),
	}
}

// EnhancedMetrics is the document served at /observability/metrics/enhanced
// (format=json): the numbers of the dashboard without its status sections,
// plus the bottleneck ranking.
type EnhancedMetrics struct {
	TotalEvents     int64   `json:"totalEvents"`
	EventsPerSecond float64 `json:"eventsPerSecond"`
	// AverageBatchTimeMs is the sum of the stages' average times per batch.
	AverageBatchTimeMs float64           `json:"averageBatchTimeMs"`
	ErrorRate          float64           `json:"errorRate"`
	Throughput         Throughput        `json:"throughput"`
	Latency            Latency           `json:"latency"`
	Stages             []StageAverage    `json:"stages"`
	Bottlenecks        []StageBottleneck `json:"bottlenecks"`
	Queue              QueueStatus       `json:"queue"`
	CircuitBreaker     BreakerStatus     `json:"circuitBreaker"`
	Runtime            RuntimeStats      `json:"runtime"`
	Timestamp          time.Time         `json:"timestamp"`
}

// EnhancedMetrics assembles the enhanced metrics.
func (d *Dashboard) EnhancedMetrics(_ context.Context) EnhancedMetrics {
	now := d.m.now()
	w := d.m.win.stats(now, d.m.start)
	timings := d.m.StageTimings()
	stages := stageAverages(timings)
	var batch float64
	for _, s := range stages {
		batch += s.AverageMs
	}
	tp := throughputOf(w)
	return EnhancedMetrics{
		TotalEvents: w.totals.received, EventsPerSecond: tp.Current, AverageBatchTimeMs: roundTo(batch, 3),
		ErrorRate: roundTo(w.errorRate(), 4), Throughput: tp, Latency: latencyOf(w), Stages: stages,
		Bottlenecks:    AnalyzeBottlenecks(timings, now).Stages,
		Queue:          d.queueStatus(),
		CircuitBreaker: BreakerStatus{State: d.breaker()},
		Runtime:        runtimeStats(), Timestamp: now.UTC(),
	}
}

// Bottlenecks analyses the stage timings (see AnalyzeBottlenecks).
func (d *Dashboard) Bottlenecks(_ context.Context) BottleneckReport { return d.m.Bottlenecks() }
