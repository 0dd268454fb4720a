package telemetry

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxSpans is the span store's size when none is given.
const DefaultMaxSpans = 10000

// spanComponent names this service in every SpanView, as the original's
// "component" did.
const spanComponent = "audit-worker"

// SpanStore keeps the most recent ended spans in memory, indexed by trace, for
// the /observability/traces endpoint. It is an sdktrace.SpanProcessor and runs
// for every span, so recording is O(1) and stores the SDK's read-only snapshot
// as is; turning spans into views is left to the (rare) readers.
//
// The store is a ring of MaxSpans slots: when it is full the oldest span makes
// room. Each trace's spans form a list threaded through the ring in end order,
// so the evicted span is always the head of its trace's list.
type SpanStore struct {
	mu     sync.Mutex
	slots  []slot
	next   int // the slot written next
	used   int
	traces map[trace.TraceID]traceList
}

type slot struct {
	span sdktrace.ReadOnlySpan
	next int32 // next slot of the same trace, -1 at the end
}

type traceList struct {
	head, tail int32
	count      int32
}

// NewSpanStore returns a store holding at most maxSpans spans
// (DefaultMaxSpans when maxSpans <= 0).
func NewSpanStore(maxSpans int) *SpanStore {
	if maxSpans <= 0 {
		maxSpans = DefaultMaxSpans
	}
	return &SpanStore{slots: make([]slot, maxSpans), traces: make(map[trace.TraceID]traceList)}
}

// OnStart implements sdktrace.SpanProcessor; only ended spans are kept.
func (s *SpanStore) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd records an ended span, evicting the oldest one when the store is full.
func (s *SpanStore) OnEnd(span sdktrace.ReadOnlySpan) {
	if s == nil || len(s.slots) == 0 {
		return
	}
	id := span.SpanContext().TraceID()
	s.mu.Lock()
	defer s.mu.Unlock()
	i := int32(s.next)
	if s.used == len(s.slots) {
		s.evictLocked(i)
	} else {
		s.used++
	}
	s.slots[i] = slot{span: span, next: -1}
	s.next = (s.next + 1) % len(s.slots)
	if l, ok := s.traces[id]; ok {
		s.slots[l.tail].next = i
		l.tail = i
		l.count++
		s.traces[id] = l
	} else {
		s.traces[id] = traceList{head: i, tail: i, count: 1}
	}
}

// evictLocked drops the span in slot i, the oldest of the store and so the
// head of its trace's list.
func (s *SpanStore) evictLocked(i int32) {
	id := s.slots[i].span.SpanContext().TraceID()
	l := s.traces[id]
	if l.count <= 1 {
		delete(s.traces, id)
		return
	}
	l.head = s.slots[i].next
	l.count--
	s.traces[id] = l
}

// Shutdown implements sdktrace.SpanProcessor.
func (s *SpanStore) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor.
func (s *SpanStore) ForceFlush(context.Context) error { return nil }

// Len is the number of spans held.
func (s *SpanStore) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// spansOf copies out the spans of one trace, in end order.
func (s *SpanStore) spansOfLocked(id trace.TraceID) []sdktrace.ReadOnlySpan {
	l, ok := s.traces[id]
	if !ok {
		return nil
	}
	out := make([]sdktrace.ReadOnlySpan, 0, l.count)
	for i := l.head; i >= 0; i = s.slots[i].next {
		out = append(out, s.slots[i].span)
	}
	return out
}

// Trace returns the spans of a trace still in the store, by start time; nil
// when none is.
func (s *SpanStore) Trace(id trace.TraceID) []SpanView {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	spans := s.spansOfLocked(id)
	s.mu.Unlock()
	if len(spans) == 0 {
		return nil
	}
	views := make([]SpanView, len(spans))
	for i, sp := range spans {
		views[i] = viewOf(sp)
	}
	slices.SortStableFunc(views, func(a, b SpanView) int { return a.StartTime.Compare(b.StartTime) })
	return views
}

// TraceSummary describes one trace in the list of recent traces.
type TraceSummary struct {
	TraceID   string    `json:"traceId"`
	RootSpan  string    `json:"rootSpan"` // the earliest span without a parent in the trace
	StartTime time.Time `json:"startTime"`
	Duration  float64   `json:"duration"` // ms, from the first start to the last end
	SpanCount int       `json:"spanCount"`
	Error     bool      `json:"error"` // some span ended with status ERROR
}

// Recent summarises up to limit traces, the one with the latest ended span first.
func (s *SpanStore) Recent(limit int) []TraceSummary {
	if s == nil || limit <= 0 {
		return nil
	}
	s.mu.Lock()
	var order []trace.TraceID
	seen := make(map[trace.TraceID]bool, limit)
	groups := make([][]sdktrace.ReadOnlySpan, 0, limit)
	// Walk back from the newest slot; a query is rare, so this is not indexed.
	for k := 1; k <= s.used && len(order) < limit; k++ {
		i := (s.next - k + len(s.slots)) % len(s.slots)
		id := s.slots[i].span.SpanContext().TraceID()
		if !seen[id] {
			seen[id] = true
			order = append(order, id)
			groups = append(groups, s.spansOfLocked(id))
		}
	}
	s.mu.Unlock()
	out := make([]TraceSummary, len(order))
	for i, id := range order {
		out[i] = summarise(id, groups[i])
	}
	return out
}

func summarise(id trace.TraceID, spans []sdktrace.ReadOnlySpan) TraceSummary {
	sum := TraceSummary{TraceID: id.String(), SpanCount: len(spans)}
	inTrace := make(map[trace.SpanID]bool, len(spans))
	for _, sp := range spans {
		inTrace[sp.SpanContext().SpanID()] = true
	}
	var first, last, rootStart time.Time
	for _, sp := range spans {
		if first.IsZero() || sp.StartTime().Before(first) {
			first = sp.StartTime()
		}
		if sp.EndTime().After(last) {
			last = sp.EndTime()
		}
		if sp.Status().Code == codes.Error {
			sum.Error = true
		}
		// A span whose parent is elsewhere (another process, or evicted) counts as a root here.
		isRoot := !sp.Parent().IsValid() || !inTrace[sp.Parent().SpanID()]
		if isRoot && (sum.RootSpan == "" || sp.StartTime().Before(rootStart)) {
			sum.RootSpan, rootStart = sp.Name(), sp.StartTime()
		}
	}
	sum.StartTime = first
	sum.Duration = millis(last.Sub(first))
	return sum
}

// SpanView is a span as the traces endpoint shows it, close to the original
// worker's span JSON.
type SpanView struct {
	TraceID       string         `json:"traceId"` // 32 hex digits
	SpanID        string         `json:"spanId"`  // 16 hex digits
	ParentSpanID  string         `json:"parentSpanId,omitempty"`
	OperationName string         `json:"operationName"`
	Kind          string         `json:"kind"`
	StartTime     time.Time      `json:"startTime"`
	EndTime       time.Time      `json:"endTime"`
	Duration      float64        `json:"duration"` // ms
	Tags          map[string]any `json:"tags"`
	Logs          []SpanLog      `json:"logs"`
	Status        SpanStatus     `json:"status"`
	Links         []SpanLink     `json:"links"`
	Component     string         `json:"component"`
}

// SpanLog is a span event.
type SpanLog struct {
	Timestamp time.Time      `json:"timestamp"`
	Level     string         `json:"level"` // "error" for recorded errors, else "info"
	Message   string         `json:"message"`
	Fields    map[string]any `json:"fields,omitempty"`
}

// SpanStatus is OK, ERROR or UNSET, with the message of an error.
type SpanStatus struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// SpanLink points at a span of another trace (the producer of a job, say).
type SpanLink struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
}

func viewOf(sp sdktrace.ReadOnlySpan) SpanView {
	sc := sp.SpanContext()
	v := SpanView{
		TraceID:       sc.TraceID().String(),
		SpanID:        sc.SpanID().String(),
		OperationName: sp.Name(),
		Kind:          sp.SpanKind().String(),
		StartTime:     sp.StartTime(),
		EndTime:       sp.EndTime(),
		Duration:      millis(sp.EndTime().Sub(sp.StartTime())),
		Tags:          make(map[string]any, len(sp.Attributes())),
		Logs:          make([]SpanLog, 0, len(sp.Events())),
		Links:         make([]SpanLink, 0, len(sp.Links())),
		Component:     spanComponent,
	}
	if p := sp.Parent(); p.IsValid() {
		v.ParentSpanID = p.SpanID().String()
	}
	for _, kv := range sp.Attributes() {
		v.Tags[string(kv.Key)] = kv.Value.AsInterface()
	}
	for _, e := range sp.Events() {
		l := SpanLog{Timestamp: e.Time, Level: "info", Message: e.Name}
		if e.Name == "exception" {
			l.Level = "error"
		}
		if len(e.Attributes) > 0 {
			l.Fields = make(map[string]any, len(e.Attributes))
			for _, kv := range e.Attributes {
				l.Fields[string(kv.Key)] = kv.Value.AsInterface()
			}
		}
		v.Logs = append(v.Logs, l)
	}
	for _, l := range sp.Links() {
		v.Links = append(v.Links, SpanLink{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String()})
	}
	switch st := sp.Status(); st.Code {
	case codes.Ok:
		v.Status = SpanStatus{Code: "OK"}
	case codes.Error:
		v.Status = SpanStatus{Code: "ERROR", Message: st.Description}
	default:
		v.Status = SpanStatus{Code: "UNSET"}
	}
	return v
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
