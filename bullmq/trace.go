package bullmq

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartlogs/audit-worker/internal/jsontext"
)

// TraceContext is the span context of the producer that added the job, when
// it was added with BullMQ's telemetry option (bullmq-otel stores the W3C
// trace context in the job's options under "tm"); invalid otherwise.
func (j *Job) TraceContext() trace.SpanContext { return j.traceCtx }

// cutTraceMeta takes the top-level "tm" member out of a job's opts JSON and
// returns the other members and the raw value of "tm". Each traced job has its
// own "tm", so the options are cached without it: otherwise no two traced jobs
// would share a cache entry. Jobs without "tm" cost one substring search;
// options that are not a valid object are returned whole, for the options'
// decoder to report.
func cutTraceMeta(opts string) (rest, tm string) {
	if !strings.Contains(opts, `"tm"`) {
		return opts, ""
	}
	var scratch [8]jsontext.Member // opts have a handful of members
	members, err := jsontext.SplitObjectString(opts, scratch[:0])
	if err != nil {
		return opts, ""
	}
	for i, m := range members {
		if m.Key != "tm" {
			continue
		}
		tm = opts[m.End-len(m.Raw) : m.End]
		switch {
		case i+1 < len(members): // drop it up to the next member
			return opts[:m.Start] + opts[members[i+1].Start:], tm
		case i > 0: // the last: drop it from the end of the one before
			return opts[:members[i-1].End] + opts[m.End:], tm
		default: // the only one
			return opts[:m.Start] + opts[m.End:], tm
		}
	}
	return opts, ""
}

// decodeTraceMeta reads the producer's span context from a "tm" value: a JSON
// string holding the propagation carrier as JSON ({"traceparent": ...}), as
// bullmq-otel writes it; a carrier object in place of the string is accepted too.
func decodeTraceMeta(raw string) trace.SpanContext {
	var carrier traceCarrier
	if !carrier.read(raw) {
		return trace.SpanContext{}
	}
	// A local propagator: the global one is never configured by this program.
	ctx := propagation.TraceContext{}.Extract(context.Background(), &carrier)
	return trace.SpanContextFromContext(ctx)
}

// traceCarrier holds the two W3C trace-context fields of a "tm" carrier.
type traceCarrier struct {
	Traceparent string
	Tracestate  string
}

// read takes the carrier's fields from raw, a JSON string holding the
// carrier object or the object itself; it reports false if raw is neither.
// Members that are not strings are ignored.
func (c *traceCarrier) read(raw string) bool {
	obj := raw
	if strings.HasPrefix(raw, `"`) {
		s, err := jsontext.Unquote([]byte(raw))
		if err != nil {
			return false
		}
		obj = s
	}
	var scratch [4]jsontext.Member
	members, err := jsontext.SplitObjectString(obj, scratch[:0])
	if err != nil {
		return false
	}
	for i := range members {
		m := &members[i]
		if m.Raw[0] != '"' {
			continue
		}
		switch m.Key {
		case "traceparent":
			c.Traceparent, _ = m.StringValue()
		case "tracestate":
			c.Tracestate, _ = m.StringValue()
		}
	}
	return true
}

func (c *traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.Traceparent
	case "tracestate":
		return c.Tracestate
	}
	return ""
}

func (c *traceCarrier) Set(string, string) {} // extraction only
func (c *traceCarrier) Keys() []string     { return []string{"traceparent", "tracestate"} }
