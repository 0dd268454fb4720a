package queueworker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/pipeline"
)

// DeadLetterJobName is the job name of dead-letter entries, as in the original.
const DeadLetterJobName = "dead-letter-event"

// Config configures a Handler.
type Config struct {
	Processor   *pipeline.Processor
	Queue       string        // the main queue's name, part of every idempotency key
	DeadLetters *bullmq.Queue // where refused events go
	// AlertThreshold: when the dead-letter queue holds at least this many
	// entries, a warning is logged (at most every AlertInterval).
	AlertThreshold int
	AlertInterval  time.Duration // default 5 minutes
	Logger         *slog.Logger
	Now            func() time.Time
}

// Handler is the bullmq.Handler that stores audit events.
type Handler struct {
	cfg            Config
	log            *slog.Logger
	deadAdded      atomic.Int64
	alertThreshold atomic.Int64 // SetAlertThreshold changes it while running

	alertMu   sync.Mutex
	lastAlert time.Time
}

// The worker asks the handler which errors are transient and where the jobs
// it gives up on go.
var (
	_ bullmq.TransientChecker = (*Handler)(nil)
	_ bullmq.DeadLetterer     = (*Handler)(nil)
)

// NewHandler returns a handler for cfg.
func NewHandler(cfg Config) *Handler {
	if cfg.AlertInterval <= 0 {
		cfg.AlertInterval = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: log}
	h.SetAlertThreshold(cfg.AlertThreshold)
	return h
}

// SetAlertThreshold changes the dead-letter depth that triggers a warning
// (configuration reload); 0 turns the warning off.
func (h *Handler) SetAlertThreshold(n int) { h.alertThreshold.Store(int64(max(n, 0))) }

// IdempotencyKey identifies a job's event across redeliveries. BullMQ's
// auto-increment ids start again at 1 when Redis is emptied, so they are paired
// with the job's creation time; an id of digits counts as one only when written
// as the counter writes it (no leading zeros). A custom id (a redriven dead
// letter, say) is the producer's own unique name for the event and stands
// alone, so re-adding the same custom id never stores the event twice.
//
// A custom id stands in the key as its SHA-256 when it is longer than
// maxKeyedJobID (BullMQ puts no limit on ids, while the key is in a unique
// index whose entries PostgreSQL caps at 2,704 bytes), when it is not text a
// store keeps (invalid UTF-8 or NUL, which Redis ids may hold: PostgreSQL would
// refuse the event and its dead letter, and JSON would alter the key), and when
// it reads as another job's key ("1:5" is numeric id 1 created at 5;
// "sha256:…" is a hashed id), so that no two jobs share a key.
func IdempotencyKey(queue string, j *bullmq.Job) string {
	if isCounterID(j.ID) {
		return "bullmq:" + queue + ":" + j.ID + ":" + strconv.FormatInt(j.Timestamp, 10)
	}
	if len(j.ID) > maxKeyedJobID || !utf8.ValidString(j.ID) || strings.IndexByte(j.ID, 0) >= 0 || readsAsAnotherKey(j.ID) {
		sum := sha256.Sum256([]byte(j.ID))
		return "bullmq:" + queue + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return "bullmq:" + queue + ":" + j.ID
}

// isCounterID reports whether id is what BullMQ's id counter hands out: a
// decimal without leading zeros. Digits with leading zeros are a custom id
// (and could be long enough to overflow the key's index entry).
func isCounterID(id string) bool {
	_, err := strconv.ParseUint(id, 10, 64)
	return err == nil && (id[0] != '0' || id == "0")
}

// readsAsAnotherKey reports whether a custom id, kept as it is in a key,
// would read as a numeric id's "<id>:<created>" or as a hashed id.
func readsAsAnotherKey(id string) bool {
	if strings.HasPrefix(id, "sha256:") {
		return true
	}
	n, created, ok := strings.Cut(id, ":")
	if !ok {
		return false
	}
	_, errID := strconv.ParseUint(n, 10, 64)
	_, errCreated := strconv.ParseInt(created, 10, 64)
	return errID == nil && errCreated == nil
}

// maxKeyedJobID is the longest custom job id kept as it is in a key.
const maxKeyedJobID = 256

// Handle stores the events of a batch of jobs. A store failure returns an error,
// so the worker keeps the jobs and offers them again; refused events (invalid,
// tampered, or refused by the store) are written to the dead-letter queue
// first and their jobs fail without retry.
func (h *Handler) Handle(ctx context.Context, jobs []*bullmq.Job) ([]bullmq.Result, error) {
	inputs := make([]pipeline.Input, len(jobs))
	for i, j := range jobs {
		inputs[i] = h.inputOf(j)
	}
	outcomes, err := h.cfg.Processor.Process(ctx, inputs)
	if err != nil {
		return nil, err
	}
	var dead []bullmq.NewJob
	results := make([]bullmq.Result, len(jobs))
	for i, o := range outcomes {
		switch o.Status {
		case pipeline.StatusStored:
			results[i].ReturnValue = fmt.Appendf(nil, `{"status":"stored","seq":%d}`, o.Seq)
		case pipeline.StatusDuplicate:
			results[i].ReturnValue = []byte(`{"status":"duplicate"}`)
		default:
			results[i].Failure = o.Reason + ": " + o.Message
			dead = append(dead, h.deadLetterJob(jobs[i], o))
		}
	}
	if len(dead) > 0 {
		// Before the jobs fail: if this call fails the batch is offered again, and
		// the custom job ids keep the dead-letter entries single.
		if _, err := h.cfg.DeadLetters.AddBulk(ctx, dead); err != nil {
			return nil, audit.Errorf(audit.CodeUnavailable, "write %d dead letters: %w", len(dead), err)
		}
		h.deadAdded.Add(int64(len(dead)))
		h.alertIfDeep(ctx)
	}
	return results, nil
}

// inputOf is the pipeline input of a job's event: its data exactly as the
// producer wrote it, under the job's idempotency key.
func (h *Handler) inputOf(j *bullmq.Job) pipeline.Input {
	return pipeline.Input{
		Payload:        j.Data,
		IdempotencyKey: IdempotencyKey(h.cfg.Queue, j),
		Source:         "bullmq:" + h.cfg.Queue,
		ReceivedAt:     time.UnixMilli(j.Timestamp),
		Trace:          j.TraceContext(), // the batch span links to the producer
	}
}

// IsTransient makes a Handle error that is a dependency's outage (the store
// down, the breaker open, the dead-letter queue unreachable) keep its jobs for
// as long as it lasts; any other error is retried a bounded number of times
// (bullmq.WorkerOptions.MaxHandleAttempts).
func (h *Handler) IsTransient(err error) bool { return audit.IsTransient(err) }

// DeadLetter adds dead-letter entries (reason audit.ReasonProcessingFailed)
// for jobs the worker gives up on because handling them kept failing.
func (h *Handler) DeadLetter(ctx context.Context, jobs []*bullmq.Job, reasons []string) error {
	dead := make([]bullmq.NewJob, len(jobs))
	for i, j := range jobs {
		dead[i] = h.deadLetterJob(j, pipeline.Outcome{
			Status: pipeline.StatusRejected, Key: IdempotencyKey(h.cfg.Queue, j),
			Reason: audit.ReasonProcessingFailed, Message: reasons[i],
		})
	}
	if _, err := h.cfg.DeadLetters.AddBulk(ctx, dead); err != nil {
		return audit.Errorf(audit.CodeUnavailable, "write %d dead letters: %w", len(dead), err)
	}
	h.deadAdded.Add(int64(len(dead)))
	h.alertIfDeep(ctx)
	return nil
}

// DeadLetterPayload is a dead-letter entry: the original's payload (docs/compatibility.md)
// plus the machine-readable reason, the field errors and the idempotency key.
type DeadLetterPayload struct {
	OriginalEvent     json.RawMessage    `json:"originalEvent"`
	FailureReason     string             `json:"failureReason"`
	ReasonCode        string             `json:"reasonCode"`
	Errors            []audit.FieldError `json:"errors,omitempty"`
	FailureCount      int                `json:"failureCount"`
	FirstFailureTime  string             `json:"firstFailureTime"`
	LastFailureTime   string             `json:"lastFailureTime"`
	OriginalJobID     string             `json:"originalJobId"`
	OriginalQueueName string             `json:"originalQueueName"`
	IdempotencyKey    string             `json:"idempotencyKey"`
	Metadata          deadLetterMetadata `json:"metadata"`
}

type deadLetterMetadata struct {
	RetryHistory []retryRecord `json:"retryHistory"`
}

type retryRecord struct {
	Attempt   int    `json:"attempt"`
	Timestamp string `json:"timestamp"`
	Error     string `json:"error"`
}

func (h *Handler) deadLetterJob(j *bullmq.Job, o pipeline.Outcome) bullmq.NewJob {
	now := h.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	original := json.RawMessage(j.Data)
	if !json.Valid(j.Data) { // keep even a payload that is not JSON, as a string
		original, _ = json.Marshal(string(j.Data))
	}
	message := o.Reason + ": " + o.Message
	payload, _ := json.Marshal(DeadLetterPayload{
		OriginalEvent: original, FailureReason: message, ReasonCode: o.Reason, Errors: o.Errors,
		FailureCount: 1, FirstFailureTime: now, LastFailureTime: now,
		OriginalJobID: j.ID, OriginalQueueName: h.cfg.Queue, IdempotencyKey: o.Key,
		Metadata: deadLetterMetadata{RetryHistory: []retryRecord{{Attempt: 1, Timestamp: now, Error: message}}},
	})
	return bullmq.NewJob{Name: DeadLetterJobName, Data: payload, Opts: bullmq.JobOptions{
		JobID: deadLetterJobID(o.Key), RemoveOnComplete: bullmq.KeepAll(), RemoveOnFail: bullmq.KeepAll(),
	}}
}

// deadLetterJobID names the entry after the event's idempotency key, so adding it
// twice (a batch offered again) leaves one entry.
func deadLetterJobID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "dl-" + hex.EncodeToString(sum[:20])
}

// alertIfDeep warns when the dead-letter queue passes its threshold.
func (h *Handler) alertIfDeep(ctx context.Context) {
	threshold := h.alertThreshold.Load()
	if threshold <= 0 {
		return
	}
	h.alertMu.Lock()
	defer h.alertMu.Unlock()
	if now := h.cfg.Now(); now.Sub(h.lastAlert) < h.cfg.AlertInterval {
		return
	}
	counts, err := h.cfg.DeadLetters.Counts(ctx)
	if err != nil {
		return
	}
	if depth := counts[bullmq.StateWaiting] + counts[bullmq.StatePaused]; depth >= threshold {
		h.lastAlert = h.cfg.Now()
		h.log.Warn("dead-letter queue above its alert threshold", "queue", h.cfg.DeadLetters.Name(),
			"depth", depth, "threshold", threshold)
	}
}

// DeadLettered is how many dead-letter entries this handler has written.
func (h *Handler) DeadLettered() int64 { return h.deadAdded.Load() }
