package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

// Access is one access to record: a read of the audit trail, a change made
// through the API, or a refused request.
type Access struct {
	// Action is the event's action: ActionQuery, ActionDenied, KeyAction("create"), ...
	Action    string
	Principal audit.Principal // zero for a request without valid credentials
	// PrincipalID names the caller when Principal is zero (e.g. "anonymous").
	PrincipalID string
	// Organizations are those the access concerned: one event is recorded for
	// each (an access to no organisation in particular records one without).
	Organizations []string
	Success       bool
	Outcome       string // what happened, in words ("forbidden: ...", "42 events")
	TargetType    string // e.g. "audit_event", "alert", "api_key", "dead_letter"
	TargetID      string
	Details       map[string]any // route, filters, counts, client address
}

// Actions of access records.
const (
	ActionQuery   = "audit.access.query"  // events searched or read
	ActionExport  = "audit.access.export" // events exported
	ActionReport  = "audit.access.report" // a report made
	ActionVerify  = "audit.access.verify" // an event verified, a proof or checkpoint read
	ActionDenied  = "audit.access.denied" // a request refused (401, 403)
	ActionAlerts  = "audit.access.alerts" // alerts read
	ActionDLQRead = "audit.access.deadletters"
)

// AccessAction is audit.access.<verb>, for changes made through the API
// (acknowledge, resolve, dismiss, redrive).
func AccessAction(verb string) string { return "audit.access." + verb }

// KeyAction is audit.key.<verb>: create, revoke, rotate.
func KeyAction(verb string) string { return "audit.key." + verb }

// Submitter takes events into the pipeline; *pipeline.Batcher is one.
type Submitter interface {
	Submit(ctx context.Context, inputs []pipeline.Input) ([]pipeline.Outcome, error)
}

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Pipeline Submitter
	Buffer   int           // records waiting to be stored; default 10,000
	MaxBatch int           // records per submission; default 500
	MaxWait  time.Duration // how long a record may wait for others; default 200 ms
	Logger   *slog.Logger
	Now      func() time.Time
	// OnLost is told how many records were lost (buffer full, or the store
	// refused them for good); the metrics count them.
	OnLost func(n int)
}

// Recorder stores access records through the pipeline like any other event:
// validated, hashed, counted by the detectors. Record never blocks and never
// fails the request that made the record: records wait in a bounded buffer,
// and what cannot be kept is counted and logged.
type Recorder struct {
	opts RecorderOptions
	log  *slog.Logger
	// queue holds pointers: a buffer of Buffer records' worth of values
	// would be live heap (1.7 MB at 10,000) that the collector's target
	// multiplies, all the time, for records that are rare.
	queue    chan *pipeline.Input
	lost     atomic.Int64
	recorded atomic.Int64
	logMu    sync.Mutex
	lastLog  time.Time
}

// NewRecorder returns a recorder; Run stores what it is given.
func NewRecorder(opts RecorderOptions) *Recorder {
	if opts.Buffer <= 0 {
		opts.Buffer = 10000
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 500
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 200 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{opts: opts, log: opts.Logger, queue: make(chan *pipeline.Input, opts.Buffer)}
}

// Record queues the events of one access. It never blocks.
func (r *Recorder) Record(a Access) {
	if r == nil {
		return
	}
	for _, in := range Inputs(a, r.opts.Now()) {
		select {
		case r.queue <- &in:
		default:
			r.lose(1, "the access-record buffer is full")
		}
	}
}

// Inputs are the pipeline inputs that record one access: an event for each
// organisation it concerned (or one without an organisation).
func Inputs(a Access, now time.Time) []pipeline.Input {
	orgs := a.Organizations
	if len(orgs) == 0 {
		orgs = []string{""}
	}
	inputs := make([]pipeline.Input, len(orgs))
	for i, org := range orgs {
		inputs[i] = pipeline.Input{Payload: eventPayload(a, org, now), IdempotencyKey: newRecordKey(), Source: "access", ReceivedAt: now}
	}
	return inputs
}

// Lost is how many access records could not be stored.
func (r *Recorder) Lost() int64 { return r.lost.Load() }

// Recorded is how many access records were stored.
func (r *Recorder) Recorded() int64 { return r.recorded.Load() }

func (r *Recorder) lose(n int, why string) {
	r.lost.Add(int64(n))
	if r.opts.OnLost != nil {
		r.opts.OnLost(n)
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if now := time.Now(); now.Sub(r.lastLog) >= 10*time.Second { // one line per 10 s at most
		r.lastLog = now
		r.log.Error("access records lost", "reason", why, "lostSoFar", r.lost.Load())
	}
}

// event renders an access record in the producers' event shape. Details are
// top-level custom fields, as producers send theirs, so they reach the
// stored details column the same way; the event's own fields win a clash.
func eventPayload(a Access, org string, now time.Time) []byte {
	e := make(map[string]any, len(a.Details)+12)
	for k, v := range a.Details {
		e[storable(k)] = storableValue(v)
	}
	if a.Principal.Role != "" {
		e["role"] = a.Principal.Role
	}
	status := audit.StatusFailure
	if a.Success {
		status = audit.StatusSuccess
	}
	principal := a.Principal.ID
	if principal == "" {
		principal = a.PrincipalID
	}
	set := func(k, v string) {
		if v != "" {
			e[k] = storable(v)
		} else {
			delete(e, k)
		}
	}
	set("timestamp", now.UTC().Format("2006-01-02T15:04:05.000Z"))
	set("action", a.Action)
	set("status", string(status))
	set("principalId", principal)
	set("organizationId", org)
	set("targetResourceType", a.TargetType)
	set("targetResourceId", a.TargetID)
	set("outcomeDescription", a.Outcome)
	set("dataClassification", string(audit.ClassInternal))
	set("eventVersion", "1.0")
	data, err := json.Marshal(e)
	if err != nil { // details hold plain values made by this program; never expected
		data, _ = json.Marshal(map[string]string{"timestamp": e["timestamp"].(string), "action": a.Action,
			"status": string(status), "principalId": principal, "organizationId": org,
			"outcomeDescription": "access details could not be encoded: " + err.Error()})
	}
	return data
}

// storable makes text from a request (a path, an id, a parameter) fit to be
// stored: the pipeline refuses NUL characters and invalid UTF-8 anywhere in
// an event, and a record refused for a caller's odd path would hide exactly
// the access it records.
func storable(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// storableValue applies storable to the text inside a detail's value.
func storableValue(v any) any {
	switch v := v.(type) {
	case string:
		return storable(v)
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = storable(s)
		}
		return out
	case map[string][]string:
		out := make(map[string][]string, len(v))
		for k, vs := range v {
			out[storable(k)] = storableValue(vs).([]string)
		}
		return out
	case url.Values:
		return storableValue(map[string][]string(v))
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[storable(k)] = storableValue(x)
		}
		return out
	}
	return v
}

func newRecordKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "access:" + hex.EncodeToString(b)
}

// Run stores queued records in batches until ctx ends, then stores what is
// queued (for at most 5 s) and returns.
func (r *Recorder) Run(ctx context.Context) error {
	batch := make([]pipeline.Input, 0, r.opts.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func(ctx context.Context) {
		if len(batch) > 0 {
			r.store(ctx, batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				select {
				case in := <-r.queue:
					if batch = append(batch, *in); len(batch) == r.opts.MaxBatch {
						flush(drainCtx)
					}
				default:
					flush(drainCtx)
					return nil
				}
			}
		case in := <-r.queue:
			if len(batch) == 0 {
				timer.Reset(r.opts.MaxWait)
			}
			if batch = append(batch, *in); len(batch) == r.opts.MaxBatch {
				timer.Stop()
				flush(ctx)
			}
		case <-timer.C:
			flush(ctx)
		}
	}
}

// store submits one batch, retrying a store that is unavailable a few times.
func (r *Recorder) store(ctx context.Context, batch []pipeline.Input) {
	var err error
	for attempt := range 4 {
		if attempt > 0 && !sleep(ctx, time.Duration(attempt)*500*time.Millisecond) {
			break
		}
		var outcomes []pipeline.Outcome
		if outcomes, err = r.opts.Pipeline.Submit(context.WithoutCancel(ctx), batch); err == nil {
			r.count(outcomes)
			return
		}
		if !audit.IsTransient(err) {
			break
		}
	}
	r.lose(len(batch), "the store did not take them: "+err.Error())
}

func (r *Recorder) count(outcomes []pipeline.Outcome) {
	rejected := 0
	for _, o := range outcomes {
		if o.Status == pipeline.StatusRejected {
			rejected++
			r.log.Error("access record refused", "reason", o.Reason, "message", o.Message)
		}
	}
	r.recorded.Add(int64(len(outcomes) - rejected))
	if rejected > 0 {
		r.lose(rejected, "the pipeline refused them")
	}
}

// sleep waits d, or less if ctx ends first; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
