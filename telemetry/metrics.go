package telemetry

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

// StageAck is the stage the BullMQ worker times: acknowledging a batch's jobs.
const StageAck = "ack"

// Queue states reported by the queue-depth sampler (the keys of its map).
const (
	QueueWait        = "wait"
	QueueDelayed     = "delayed"
	QueuePrioritized = "prioritized"
	QueueActive      = "active"
	QueueFailed      = "failed"
	QueueDeadLetter  = "dead_letter"
)

// Bucket bounds. A batch of 1000 events spends milliseconds per CPU stage and
// up to seconds in a slow store; end-to-end latency includes time waiting in
// the queue, so it reaches minutes during a backlog.
var (
	stageBuckets     = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	latencyBuckets   = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	batchSizeBuckets = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}
)

// MetricsOptions configures Metrics; every field is optional.
type MetricsOptions struct {
	Logger *slog.Logger
	// Now is the clock of the recent-window statistics; time.Now when nil.
	Now func() time.Time
	// RecentErrors is how many recent errors the dashboard keeps; default 50.
	RecentErrors int
}

// Metrics holds the worker's Prometheus metrics on its own registry, and the
// recent-window statistics behind the dashboard. It is a pipeline.Observer;
// the wiring also calls its methods for what the pipeline cannot see (breaker
// transitions, acknowledgements, retries, configuration reloads, queue depth).
type Metrics struct {
	log   *slog.Logger
	now   func() time.Time
	start time.Time

	reg      *prometheus.Registry
	stageReg *prometheus.Registry // only the stage histogram, read back for bottleneck analysis

	received                     *prometheus.CounterVec
	receivedHTTP, receivedBullMQ prometheus.Counter // the usual label values, bound once
	stored, duplicates           prometheus.Counter
	rejected                     *prometheus.CounterVec // by reason
	batchSize                    prometheus.Histogram
	stageValidate, stageVerify   prometheus.Observer
	stageStore, stageAck         prometheus.Observer
	endToEnd                     prometheus.Histogram
	storeFailures                prometheus.Counter
	queueJobs                    *prometheus.GaugeVec
	queueSampleFailures          prometheus.Counter
	breakerState                 prometheus.Gauge
	breakerTransitions           *prometheus.CounterVec
	retries, retriedEvents       prometheus.Counter
	ackedJobs                    prometheus.Counter
	reloads                      *prometheus.CounterVec
	ingestRefused                *prometheus.CounterVec
	ingestBudget                 prometheus.Gauge
	ingestInFlight               atomic.Pointer[func() int64] // set by WatchIngestInFlight
	memoryReleases               prometheus.Counter
	deadLettersPruned            *prometheus.CounterVec
	accessRecordsLost            prometheus.Counter
	treeSize                     prometheus.Gauge
	checkpoints                  prometheus.Counter
	checkpointsRefused           prometheus.Counter
	checkpointLag                prometheus.Histogram
	deadLetterEntries            prometheus.Gauge
	deadLetterBytes              prometheus.Gauge

	win *window // recent-window statistics, guarded by its own lock

	mu          sync.Mutex // guards the fields below
	breaker     pipeline.BreakerState
	queues      map[string]int64
	queuesAt    time.Time
	queuesError string
	// breakerHistory is the latest transitions, oldest first (series.go).
	breakerHistory []BreakerTransition
}

// NewMetrics creates the metrics and their registry, which also carries the
// Go runtime and process collectors.
func NewMetrics(opts MetricsOptions) *Metrics {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RecentErrors <= 0 {
		opts.RecentErrors = 50
	}
	m := &Metrics{
		log: opts.Logger, now: opts.Now, start: opts.Now(),
		reg: prometheus.NewRegistry(), stageReg: prometheus.NewRegistry(),
		win:     newWindow(opts.RecentErrors),
		breaker: pipeline.BreakerClosed,
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.received = m.counterVec("audit_events_received_total",
		"Events handed to the pipeline, by source (http, bullmq). A batch offered again after a store failure counts again.", "source")
	m.receivedHTTP = m.received.WithLabelValues("http")
	m.receivedBullMQ = m.received.WithLabelValues("bullmq")
	m.stored = m.counter("audit_events_stored_total", "Events written to the store.")
	m.duplicates = m.counter("audit_events_duplicate_total", "Valid events found already stored under the same idempotency key.")
	m.rejected = m.counterVec("audit_events_rejected_total", "Events refused for good and dead-lettered, by reason.", "reason")
	for _, reason := range rejectReasons {
		m.rejected.WithLabelValues(reason) // listed at 0 before the first
	}
	m.batchSize = m.histogram("audit_batch_size_events", "Events per batch handed to the pipeline.", batchSizeBuckets)
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "audit_stage_duration_seconds", Help: "Time one batch spends in a stage (validate, verify, store, ack).",
		Buckets: stageBuckets,
	}, []string{"stage"})
	m.reg.MustRegister(stages)
	m.stageReg.MustRegister(stages)
	m.stageValidate = stages.WithLabelValues(pipeline.StageValidate)
	m.stageVerify = stages.WithLabelValues(pipeline.StageVerify)
	m.stageStore = stages.WithLabelValues(pipeline.StageStore)
	m.stageAck = stages.WithLabelValues(StageAck)
	m.endToEnd = m.histogram("audit_end_to_end_latency_seconds",
		"Time from enqueue (BullMQ job creation or HTTP arrival) to the commit that stored the event.", latencyBuckets)
	m.storeFailures = m.counter("audit_store_failures_total", "Batches the store failed to write (nothing of them was written).")
	m.queueJobs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "audit_queue_jobs", Help: "Jobs in the BullMQ queue by state, and in the dead-letter queue (state dead_letter), as last sampled.",
	}, []string{"state"})
	m.reg.MustRegister(m.queueJobs)
	m.queueSampleFailures = m.counter("audit_queue_sample_failures_total", "Failed reads of the queue depths.")
	m.breakerState = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "audit_circuit_breaker_state", Help: "State of the store's circuit breaker: 0 closed, 1 half-open, 2 open.",
	})
	m.reg.MustRegister(m.breakerState)
	m.breakerTransitions = m.counterVec("audit_circuit_breaker_transitions_total", "Circuit breaker state changes.", "from", "to")
	m.retries = m.counter("audit_batch_retries_total", "Batches held after a store failure and offered again.")
	m.retriedEvents = m.counter("audit_batch_retried_events_total", "Events in batches offered again after a store failure.")
	m.ackedJobs = m.counter("audit_jobs_acked_total", "BullMQ jobs acknowledged (completed or failed) after their batch.")
	m.reloads = m.counterVec("audit_config_reloads_total", "Configuration versions seen by the reloader, by result.", "result")
	m.registerIngestMetrics()
	m.registerDeadLetterMetrics()
	m.registerTreeMetrics()
	return m
}

func (m *Metrics) registerTreeMetrics() {
	m.treeSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "audit_tlog_checkpoint_size", Help: "Leaves (stored rows) in the latest signed checkpoint of the Merkle tree.",
	})
	m.reg.MustRegister(m.treeSize)
	m.checkpoints = m.counter("audit_tlog_checkpoints_total", "Checkpoints of the Merkle tree signed, stored and published.")
	m.checkpointsRefused = m.counter("audit_tlog_checkpoints_refused_total",
		"Checkpoints not signed because the tree is not an extension of the last one (the stored tree was altered): investigate with audit-worker verify.")
	m.checkpointLag = m.histogram("audit_tlog_checkpoint_lag_seconds",
		"Time from the integration of the oldest row a checkpoint newly covers to its signature.",
		[]float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60})
}

// CheckpointSigned records a checkpoint of size leaves, lag after its oldest new row was integrated.
func (m *Metrics) CheckpointSigned(size int64, lag time.Duration) {
	m.treeSize.Set(float64(size))
	m.checkpoints.Inc()
	m.checkpointLag.Observe(lag.Seconds())
}

// CheckpointRefused counts a checkpoint the integrator refused to sign.
func (m *Metrics) CheckpointRefused() { m.checkpointsRefused.Inc() }

func (m *Metrics) registerIngestMetrics() {
	m.ingestRefused = m.counterVec("audit_http_ingest_refused_total",
		"Ingest requests refused before their body was read: too_large (over the body limit or the in-flight budget, 413), busy (the in-flight budget stayed full, 503).", "reason")
	for _, reason := range []string{"too_large", "busy"} {
		m.ingestRefused.WithLabelValues(reason) // listed at 0 before the first refusal
	}
	m.ingestBudget = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "audit_http_ingest_budget_bytes", Help: "Bytes of ingest request bodies that may be held at once (http.maxInFlightBytes).",
	})
	m.reg.MustRegister(m.ingestBudget)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audit_http_ingest_in_flight_bytes", Help: "Bytes of ingest request bodies held now (reserved before reading, given back after the answer).",
	}, func() float64 {
		if read := m.ingestInFlight.Load(); read != nil {
			return float64((*read)())
		}
		return 0
	}))
	m.memoryReleases = m.counter("audit_memory_releases_total", "Returns of freed heap memory to the OS after an ingest burst.")
	m.accessRecordsLost = m.counter("audit_access_records_lost_total",
		"Access records (audit.access.* events) that could not be stored: their buffer was full or the store refused them.")
}

func (m *Metrics) registerDeadLetterMetrics() {
	m.deadLettersPruned = m.counterVec("audit_dead_letters_pruned_total",
		"Dead letters deleted by the maintenance pass: quota (beyond storage.deadLetters.maxEntries or maxBytes), retention (older than retentionDays).", "reason")
	m.deadLetterEntries = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "audit_dead_letters", Help: "Dead letters kept in the store, as of the last maintenance pass.",
	})
	m.deadLetterBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "audit_dead_letters_bytes", Help: "Payload bytes of the dead letters kept in the store, as of the last maintenance pass.",
	})
	m.reg.MustRegister(m.deadLetterEntries, m.deadLetterBytes)
}

// WatchIngestInFlight sets the ingest budget and where the in-flight bytes
// are read from at each scrape (httpapi.IngestObserver).
func (m *Metrics) WatchIngestInFlight(budget int64, inFlight func() int64) {
	m.ingestBudget.Set(float64(budget))
	m.ingestInFlight.Store(&inFlight)
}

// IngestRefused counts an ingest request refused for its size or a full budget.
func (m *Metrics) IngestRefused(reason string) { m.ingestRefused.WithLabelValues(reason).Inc() }

// MemoryReleased counts a return of freed memory to the OS.
func (m *Metrics) MemoryReleased() { m.memoryReleases.Inc() }

// AccessRecordsLost counts access records that could not be stored.
func (m *Metrics) AccessRecordsLost(n int) { m.accessRecordsLost.Add(float64(n)) }

// DeadLettersPruned counts dead letters deleted beyond the quota and past the retention.
func (m *Metrics) DeadLettersPruned(byQuota, byRetention int64) {
	m.deadLettersPruned.WithLabelValues("quota").Add(float64(byQuota))
	m.deadLettersPruned.WithLabelValues("retention").Add(float64(byRetention))
}

// SetDeadLetterUsage sets how many dead letters the store keeps, and their payload bytes.
func (m *Metrics) SetDeadLetterUsage(entries, bytes int64) {
	m.deadLetterEntries.Set(float64(entries))
	m.deadLetterBytes.Set(float64(bytes))
}

func (m *Metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	m.reg.MustRegister(h)
	return h
}

// Registry is the registry the metrics live on; other packages register theirs on it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveBatch records one batch (pipeline.Observer). It runs once per batch
// on the processor's path, so it allocates nothing per event and takes one lock
// per batch; the per-event work is a histogram observation per stored event.
func (m *Metrics) ObserveBatch(_ context.Context, r *pipeline.BatchReport) {
	m.countReceived(r.Inputs)
	m.batchSize.Observe(float64(len(r.Inputs)))
	m.stageValidate.Observe(r.Stages.Validate.Seconds())
	m.stageVerify.Observe(r.Stages.Verify.Seconds())
	if r.Stages.Store > 0 || r.Err != nil { // a batch of only duplicates-in-batch may skip the store
		m.stageStore.Observe(r.Stages.Store.Seconds())
	}

	now := m.now()
	w := m.win
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.bucket(now)
	b.received += int64(len(r.Inputs))
	w.totals.received += int64(len(r.Inputs))
	if r.Err != nil {
		m.storeFailures.Inc()
		b.errors += int64(len(r.Inputs))
		w.totals.failedEvents += int64(len(r.Inputs))
		w.addError(RecentError{Time: now, Kind: "store_failure", Message: clipText(r.Err.Error(), maxErrorMessage)})
		return
	}

	var stored, dups int
	stride := len(r.Accepted)/maxSamplesPerBatch + 1 // bounds what one batch puts in the sample
	for i, a := range r.Accepted {
		if !a.Stored {
			dups++
			continue
		}
		stored++
		received := r.Inputs[a.Input].ReceivedAt
		if received.IsZero() {
			continue // the source did not say when it got the event
		}
		lat := max(r.CommittedAt.Sub(received), 0) // a producer's clock may run ahead of ours
		m.endToEnd.Observe(lat.Seconds())
		if lat > b.maxLatency {
			b.maxLatency = lat
		}
		if i%stride == 0 {
			w.addSample(b.sec, lat)
		}
	}
	m.stored.Add(float64(stored))
	m.duplicates.Add(float64(dups))
	w.totals.stored += int64(stored)
	w.totals.duplicates += int64(dups)

	if rejected := len(r.Inputs) - len(r.Accepted); rejected > 0 {
		m.countRejected(r, rejected, now)
		b.errors += int64(rejected)
		w.totals.rejected += int64(rejected)
	}
}

// countReceived counts inputs by the part of their source before ':'. Inputs of
// one batch usually share a source, so each run of equal sources is added once.
func (m *Metrics) countReceived(inputs []pipeline.Input) {
	run, n := "", 0
	for i := range inputs {
		src, _, _ := strings.Cut(inputs[i].Source, ":")
		if src != run && n > 0 {
			m.addReceived(run, n)
			n = 0
		}
		run = src
		n++
	}
	if n > 0 {
		m.addReceived(run, n)
	}
}

func (m *Metrics) addReceived(source string, n int) {
	switch source {
	case "http":
		m.receivedHTTP.Add(float64(n))
	case "bullmq":
		m.receivedBullMQ.Add(float64(n))
	case "":
		m.received.WithLabelValues("unknown").Add(float64(n))
	default:
		m.received.WithLabelValues(source).Add(float64(n))
	}
}

// countRejected counts the batch's rejected events by reason and keeps the
// last few in the recent errors, with their reason and the first field's code,
// never their content. The window lock is held.
func (m *Metrics) countRejected(r *pipeline.BatchReport, rejected int, at time.Time) {
	var byReason [len(rejectReasons) + 1]int // the last counts reasons not in the list
	skip := rejected - len(m.win.errs)       // only the last ones fit in the ring
	seen := 0
	for i := range r.Outcomes {
		o := &r.Outcomes[i]
		if o.Status != pipeline.StatusRejected {
			continue
		}
		byReason[reasonIndex(o.Reason)]++
		if seen++; seen > skip {
			e := RecentError{Time: at, Kind: "rejected", Reason: o.Reason}
			if len(o.Errors) > 0 {
				e.Field, e.Code = clipText(o.Errors[0].Field, 64), o.Errors[0].Code
			}
			m.win.addError(e)
		}
	}
	for i, n := range byReason {
		if n > 0 {
			reason := "other"
			if i < len(rejectReasons) {
				reason = rejectReasons[i]
			}
			m.rejected.WithLabelValues(reason).Add(float64(n))
		}
	}
}

// rejectReasons are the reasons the rejected counter has a label for; the
// list is fixed so that the metric's cardinality is.
var rejectReasons = [...]string{audit.ReasonValidation, audit.ReasonIntegrityViolation,
	audit.ReasonStoreRefused, audit.ReasonProcessingFailed, audit.ReasonForbiddenOrganization}

func reasonIndex(reason string) int {
	for i, r := range rejectReasons {
		if r == reason {
			return i
		}
	}
	return len(rejectReasons)
}

// BreakerChanged records a circuit breaker transition; pass it as
// pipeline.BreakerConfig.OnChange (or call it from there).
func (m *Metrics) BreakerChanged(from, to pipeline.BreakerState) {
	m.breakerState.Set(breakerValue(to))
	m.breakerTransitions.WithLabelValues(breakerLabel(from), breakerLabel(to)).Inc()
	m.mu.Lock()
	m.breaker = to
	m.breakerHistory = appendTransition(m.breakerHistory, BreakerTransition{Time: m.now().UTC(), From: from, To: to})
	m.mu.Unlock()
	if to == pipeline.BreakerOpen {
		m.win.mu.Lock()
		m.win.addError(RecentError{Time: m.now(), Kind: "circuit_breaker", Message: "circuit breaker opened: the store kept failing"})
		m.win.mu.Unlock()
	}
}

// BreakerState is the state of the last transition seen (closed at start).
func (m *Metrics) BreakerState() pipeline.BreakerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.breaker
}

func breakerValue(s pipeline.BreakerState) float64 {
	switch s {
	case pipeline.BreakerHalfOpen:
		return 1
	case pipeline.BreakerOpen:
		return 2
	}
	return 0
}

func breakerLabel(s pipeline.BreakerState) string { return strings.ToLower(string(s)) }

// ConfigReload counts a configuration version by what the reloader did with
// it (applied, refused, restart_required).
func (m *Metrics) ConfigReload(result string) { m.reloads.WithLabelValues(result).Inc() }

// BatchAcked records the acknowledgement of a batch's jobs and how long it took.
func (m *Metrics) BatchAcked(jobs int, d time.Duration) {
	m.stageAck.Observe(d.Seconds())
	m.ackedJobs.Add(float64(jobs))
}

// BatchRetried records a batch held after a store failure and offered again.
// The failure itself was already recorded by ObserveBatch.
func (m *Metrics) BatchRetried(jobs int, _ error) {
	m.retries.Inc()
	m.retriedEvents.Add(float64(jobs))
}

// SampleQueues reads the queue depths now and then every interval until ctx
// ends, and sets the queue gauges from them. read returns depths keyed by state
// (QueueWait … QueueDeadLetter) and must be cheap (counts, never jobs). A failed
// read is logged and counted; the gauges keep the last good values.
func (m *Metrics) SampleQueues(ctx context.Context, interval time.Duration, read func(ctx context.Context) (map[string]int64, error)) {
	if interval <= 0 {
		interval = 15 * time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		m.sampleQueues(ctx, interval, read)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (m *Metrics) sampleQueues(ctx context.Context, timeout time.Duration, read func(ctx context.Context) (map[string]int64, error)) {
	readCtx, cancel := context.WithTimeout(ctx, timeout) // a hung read must not stop the sampling
	defer cancel()
	depths, err := read(readCtx)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		m.queueSampleFailures.Inc()
		m.log.Warn("read queue depths", "err", err)
		msg := clipText(err.Error(), maxErrorMessage)
		m.mu.Lock()
		m.queuesError = msg
		m.mu.Unlock()
		m.win.mu.Lock()
		m.win.addError(RecentError{Time: m.now(), Kind: "queue_sample", Message: msg})
		m.win.mu.Unlock()
		return
	}
	for state, n := range depths {
		m.queueJobs.WithLabelValues(state).Set(float64(n))
	}
	m.mu.Lock()
	m.queues, m.queuesAt, m.queuesError = maps.Clone(depths), m.now(), ""
	m.mu.Unlock()
}

// QueueDepths returns the last depths read and when; nil and the zero time
// before the first successful read.
func (m *Metrics) QueueDepths() (map[string]int64, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.queues), m.queuesAt
}

// queueSampleError is the last read failure, "" after a successful read.
func (m *Metrics) queueSampleError() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queuesError
}

const maxErrorMessage = 256

// clipText shortens s to at most n bytes without splitting a UTF-8 sequence.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
