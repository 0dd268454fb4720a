package bullmq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Job is a job as stored in its hash (docs/bullmq-protocol.md), read by Fetch.
type Job struct {
	ID   string
	Name string
	// Data is the raw JSON text of the "data" field, exactly as the producer wrote it.
	Data []byte
	Opts JobOptions
	// Timestamp is the creation time in ms since the epoch.
	Timestamp int64
	// AttemptsMade ("atm", legacy "attemptsMade") counts finished attempts.
	AttemptsMade int
	// AttemptsStarted ("ats") counts fetches, including the current one.
	AttemptsStarted int
	// StalledCounter ("stc") counts stall recoveries.
	StalledCounter int
	// DeferredFailure ("defa") is set when the job stalled too often; such a job
	// must be failed at once, without retry.
	DeferredFailure string
	Priority        int
	// ProcessedOn is the time of the current fetch (ms).
	ProcessedOn int64
	// Token is the lock token this consumer holds for the job.
	Token string

	parentKey string // flows
	dedupID   string // "deid": the deduplication id to release when the job finishes
	repeatKey string // "rjk": job scheduler / repeatable job
	optsErr   error
	traceCtx  trace.SpanContext // the producer's span, from opts "tm" (trace.go)
}

// Unsupported reports why this consumer cannot honour the job, if it cannot:
// repeatable/scheduler jobs (Node's worker schedules the next run itself), flow
// jobs (finishing them must update the parent), custom backoff strategies (they
// live in the Node worker's code) and jobs whose opts cannot be read.
func (j *Job) Unsupported() (reason string, ok bool) {
	switch {
	case j.optsErr != nil:
		return fmt.Sprintf("job options cannot be read: %v", j.optsErr), true
	case j.Opts.Repeat || j.repeatKey != "":
		return "repeatable jobs and job schedulers (opts.repeat) are not supported by the Go consumer", true
	case j.Opts.Parent || j.parentKey != "":
		return "flow jobs (parent/children) are not supported by the Go consumer", true
	case j.Opts.Backoff != nil && j.Opts.Backoff.Type != BackoffFixed && j.Opts.Backoff.Type != BackoffExponential:
		return fmt.Sprintf("custom backoff strategy %q is not supported by the Go consumer (only fixed and exponential)", j.Opts.Backoff.Type), true
	}
	return "", false
}

// Backoff types BullMQ implements itself; any other type is a custom strategy.
const (
	BackoffFixed       = "fixed"
	BackoffExponential = "exponential"
)

// Backoff is opts.backoff. A plain number N in the opts means {fixed, N}.
type Backoff struct {
	Type string
	// Delay is the base delay in ms.
	Delay int64
	// Jitter in (0, 1] spreads the delay over [delay*(1-jitter), delay); 0 = none.
	Jitter float64
}

func (b Backoff) MarshalJSON() ([]byte, error) {
	m := map[string]any{"type": b.Type, "delay": b.Delay}
	if b.Jitter != 0 {
		m["jitter"] = b.Jitter
	}
	return json.Marshal(m)
}

func (b *Backoff) UnmarshalJSON(raw []byte) error {
	if n, ok := jsonNumber(raw); ok {
		*b = Backoff{Type: BackoffFixed, Delay: int64(n)}
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("backoff: %w", err)
	}
	*b = Backoff{}
	if v, ok := m["type"]; ok {
		if err := json.Unmarshal(v, &b.Type); err != nil {
			return fmt.Errorf("backoff.type: %w", err)
		}
	}
	if v, ok := m["delay"]; ok {
		n, ok := jsonNumber(v)
		if !ok {
			return fmt.Errorf("backoff.delay: not a number: %s", v)
		}
		b.Delay = int64(n)
	}
	if v, ok := m["jitter"]; ok {
		n, ok := jsonNumber(v)
		if !ok {
			return fmt.Errorf("backoff.jitter: not a number: %s", v)
		}
		b.Jitter = n
	}
	return nil
}

// KeepJobs is removeOnComplete / removeOnFail: true (remove at once), false or
// unset (keep all), a number N (keep the newest N) or {count, age} (age in seconds).
// The zero value is "unset".
type KeepJobs struct {
	form  keepForm
	count int   // -1 = unlimited
	age   int64 // seconds; -1 = no age limit
}

type keepForm uint8

const (
	keepUnset keepForm = iota
	keepBool
	keepNumber
	keepObject
)

// KeepAll is removeOnX: false.
func KeepAll() KeepJobs { return KeepJobs{form: keepBool, count: -1, age: -1} }

// RemoveAll is removeOnX: true.
func RemoveAll() KeepJobs { return KeepJobs{form: keepBool, count: 0, age: -1} }

// KeepLast is removeOnX: n (keep the newest n).
func KeepLast(n int) KeepJobs { return KeepJobs{form: keepNumber, count: n, age: -1} }

// KeepWithin is removeOnX: {count, age}; count < 0 omits count, age < 0 omits age.
func KeepWithin(count int, age time.Duration) KeepJobs {
	k := KeepJobs{form: keepObject, count: count, age: -1}
	if age >= 0 {
		k.age = int64(age / time.Second)
	}
	return k
}

// IsSet reports whether the option was given.
func (k KeepJobs) IsSet() bool { return k.form != keepUnset }

// Limits returns how many finished jobs to keep (-1 = all) and the maximum age
// (negative = no age limit). Unset means keep all.
func (k KeepJobs) Limits() (count int, age time.Duration) {
	if k.form == keepUnset {
		return -1, -1
	}
	if k.age < 0 {
		return k.count, -1
	}
	return k.count, time.Duration(k.age) * time.Second
}

func (k KeepJobs) MarshalJSON() ([]byte, error) {
	switch k.form {
	case keepBool:
		return json.Marshal(k.count == 0)
	case keepNumber:
		return json.Marshal(k.count)
	case keepObject:
		m := map[string]int64{}
		if k.count >= 0 {
			m["count"] = int64(k.count)
		}
		if k.age >= 0 {
			m["age"] = k.age
		}
		return json.Marshal(m)
	}
	return []byte("null"), nil
}

func (k *KeepJobs) UnmarshalJSON(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "null":
		*k = KeepJobs{}
		return nil
	case "true":
		*k = RemoveAll()
		return nil
	case "false":
		*k = KeepAll()
		return nil
	}
	if n, ok := jsonNumber(raw); ok {
		*k = KeepLast(int(n))
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("keep jobs: %w", err)
	}
	*k = KeepJobs{form: keepObject, count: -1, age: -1}
	if v, ok := m["count"]; ok {
		if n, ok := jsonNumber(v); ok {
			k.count = int(n)
		}
	}
	if v, ok := m["age"]; ok {
		if n, ok := jsonNumber(v); ok {
			k.age = int64(n)
		}
	}
	return nil
}

// JobOptions is the subset of BullMQ job options this package writes and honours.
type JobOptions struct {
	// Attempts is the total number of attempts; 0 and 1 both mean "no retry".
	Attempts int
	Backoff  *Backoff
	// Delay before the job becomes ready (stored in ms).
	Delay time.Duration
	// Priority: 0 none, 1 highest ... 2^21 lowest.
	Priority int
	// Lifo puts the job at the consumer end of wait.
	Lifo bool
	// JobID is a custom id: adding an existing id again is a no-op ("duplicated").
	JobID            string
	RemoveOnComplete KeepJobs
	RemoveOnFail     KeepJobs
	// StackTraceLimit keeps only the newest N stacktrace entries; nil = all.
	StackTraceLimit *int

	// Repeat and Parent are only read: they tell that opts.repeat / opts.parent
	// were present on a fetched job (which makes it unsupported).
	Repeat bool
	Parent bool
}

// MaxPriority is the largest priority BullMQ accepts.
const MaxPriority = 1 << 21

// MarshalJSON writes the opts the way Node stores them: attempts is always present.
func (o JobOptions) MarshalJSON() ([]byte, error) {
	m := map[string]any{"attempts": o.Attempts}
	if o.Backoff != nil {
		m["backoff"] = *o.Backoff
	}
	if o.Delay > 0 {
		m["delay"] = o.Delay.Milliseconds()
	}
	if o.Priority > 0 {
		m["priority"] = o.Priority
	}
	if o.Lifo {
		m["lifo"] = true
	}
	if o.JobID != "" {
		m["jobId"] = o.JobID
	}
	if o.RemoveOnComplete.IsSet() {
		m["removeOnComplete"] = o.RemoveOnComplete
	}
	if o.RemoveOnFail.IsSet() {
		m["removeOnFail"] = o.RemoveOnFail
	}
	if o.StackTraceLimit != nil {
		m["stackTraceLimit"] = *o.StackTraceLimit
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads opts as any BullMQ producer wrote them (cjson-encoded, so
// numbers may be in float or exponent form). Unknown keys are ignored.
func (o *JobOptions) UnmarshalJSON(raw []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		// An empty Lua table is encoded as {} but also tolerate [] here.
		if string(bytes.TrimSpace(raw)) == "[]" {
			*o = JobOptions{}
			return nil
		}
		return fmt.Errorf("opts: %w", err)
	}
	*o = JobOptions{}
	num := func(key string) (float64, error) {
		v, ok := m[key]
		if !ok || isNull(v) {
			return 0, nil
		}
		n, ok := jsonNumber(v)
		if !ok {
			return 0, fmt.Errorf("opts.%s: not a number: %s", key, v)
		}
		return n, nil
	}
	var err error
	var n float64
	if n, err = num("attempts"); err != nil {
		return err
	}
	o.Attempts = int(n)
	if n, err = num("delay"); err != nil {
		return err
	}
	o.Delay = time.Duration(n) * time.Millisecond
	if n, err = num("priority"); err != nil {
		return err
	}
	o.Priority = int(n)
	if n, err = num("stackTraceLimit"); err != nil {
		return err
	}
	if v, ok := m["stackTraceLimit"]; ok && !isNull(v) {
		limit := int(n)
		o.StackTraceLimit = &limit
	}
	if v, ok := m["backoff"]; ok && !isNull(v) {
		o.Backoff = new(Backoff)
		if err := o.Backoff.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("opts.%w", err)
		}
	}
	if v, ok := m["lifo"]; ok {
		o.Lifo = string(bytes.TrimSpace(v)) == "true"
	}
	if v, ok := m["jobId"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &o.JobID); err != nil {
			// Node accepts any id it can turn into a string; keep the raw text.
			o.JobID = strings.Trim(string(v), `"`)
		}
	}
	if v, ok := m["removeOnComplete"]; ok {
		if err := o.RemoveOnComplete.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("opts.removeOnComplete: %w", err)
		}
	}
	if v, ok := m["removeOnFail"]; ok {
		if err := o.RemoveOnFail.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("opts.removeOnFail: %w", err)
		}
	}
	o.Repeat = present(m, "repeat")
	o.Parent = present(m, "parent")
	return nil
}

func present(m map[string]json.RawMessage, key string) bool {
	v, ok := m[key]
	return ok && !isNull(v) && string(bytes.TrimSpace(v)) != "false"
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// jsonNumber parses a JSON number, or a string holding one (tolerant, as Lua and
// JS producers differ).
func jsonNumber(raw []byte) (float64, bool) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// parseIntText parses an integer hash field written as "123", "123.0" or "1.23e2".
func parseIntText(s string) int64 {
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		// Beyond int64 a conversion would wrap (9.7e18 became a large
		// negative count): such a count is the nearest int64.
		switch {
		case f >= math.MaxInt64: // 2^63 as a float64
			return math.MaxInt64
		case f < math.MinInt64:
			return math.MinInt64
		}
		return int64(f)
	}
	return 0
}

// optsCache remembers parsed job options by their JSON text: producers send the
// same options with every job, and parsing them per job cost more than any other
// step of turning a fetched hash into a Job. Parsed options are shared between
// jobs and must not be modified.
type optsCache struct {
	mu sync.Mutex
	m  map[string]parsedOpts
}

type parsedOpts struct {
	opts JobOptions
	err  error
}

const optsCacheSize = 256

func (c *optsCache) parse(raw string) (JobOptions, error) {
	if c == nil {
		var o JobOptions
		err := o.UnmarshalJSON([]byte(raw))
		return o, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[raw]; ok {
		return p.opts, p.err
	}
	var p parsedOpts
	p.err = p.opts.UnmarshalJSON([]byte(raw))
	if c.m == nil || len(c.m) >= optsCacheSize {
		c.m = make(map[string]parsedOpts, optsCacheSize)
	}
	c.m[raw] = p
	return p.opts, p.err
}

// jobFromHash builds a Job from its HGETALL fields; cache may be nil.
func jobFromHash(id string, h map[string]string, cache *optsCache) *Job {
	j := &Job{
		ID:              id,
		Name:            h["name"],
		Data:            []byte(h["data"]),
		Timestamp:       parseIntText(h["timestamp"]),
		AttemptsStarted: int(parseIntText(h["ats"])),
		StalledCounter:  int(parseIntText(h["stc"])),
		DeferredFailure: h["defa"],
		Priority:        int(parseIntText(h["priority"])),
		ProcessedOn:     parseIntText(h["processedOn"]),
		parentKey:       h["parentKey"],
		dedupID:         h["deid"],
		repeatKey:       h["rjk"],
	}
	if v, ok := h["atm"]; ok {
		j.AttemptsMade = int(parseIntText(v))
	} else {
		j.AttemptsMade = int(parseIntText(h["attemptsMade"]))
	}
	if len(j.Data) == 0 {
		j.Data = []byte("{}")
	}
	if raw := h["opts"]; raw != "" {
		raw, tm := cutTraceMeta(raw)
		j.Opts, j.optsErr = cache.parse(raw)
		if tm != "" {
			j.traceCtx = decodeTraceMeta(tm)
		}
	}
	if h["parent"] != "" {
		j.Opts.Parent = true
	}
	return j
}
