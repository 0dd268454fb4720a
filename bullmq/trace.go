package bullmq

import (
	"context"
	"encoding/json"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceContext is the span context of the producer that added the job, when
// it was added with BullMQ's telemetry option (bullmq-otel stores the W3C
// trace context in the job's options under "tm"); invalid otherwise.
func (j *Job) TraceContext() trace.SpanContext { return j.traceCtx }

// cutTraceMeta takes the top-level "tm" member out of a job's opts JSON and
// returns the other members and the raw value of "tm". Each traced job has its
// own "tm", so the options are cached without it: otherwise no two traced jobs
// would share a cache entry. Jobs without "tm" cost one substring search.
func cutTraceMeta(opts string) (rest, tm string) {
	if !strings.Contains(opts, `"tm"`) {
		return opts, ""
	}
	i := skipJSONSpace(opts, 0)
	if i >= len(opts) || opts[i] != '{' {
		return opts, ""
	}
	i++
	for {
		start := skipJSONSpace(opts, i) // the member's first byte
		if start >= len(opts) || opts[start] != '"' {
			return opts, ""
		}
		keyEnd := skipJSONValue(opts, start)
		colon := skipJSONSpace(opts, keyEnd)
		if keyEnd < 0 || colon >= len(opts) || opts[colon] != ':' {
			return opts, ""
		}
		valStart := skipJSONSpace(opts, colon+1)
		valEnd := skipJSONValue(opts, valStart)
		if valEnd < 0 {
			return opts, ""
		}
		after := skipJSONSpace(opts, valEnd)
		if after >= len(opts) {
			return opts, ""
		}
		if opts[start:keyEnd] == `"tm"` {
			tm = opts[valStart:valEnd]
			switch {
			case opts[after] == ',': // drop the member and the comma after it
				return opts[:start] + opts[skipJSONSpace(opts, after+1):], tm
			case opts[after] == '}':
				// The last member: drop the comma before it, if any.
				cut := strings.TrimRight(opts[:start], " \t\r\n")
				cut = strings.TrimSuffix(cut, ",")
				return cut + opts[after:], tm
			}
			return opts, ""
		}
		switch opts[after] {
		case ',':
			i = after + 1
		default: // '}' (the end) or malformed: no "tm" member
			return opts, ""
		}
	}
}

func skipJSONSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipJSONValue returns where the JSON value starting at s[i] ends, or -1. It
// only finds the end (strings, nesting); the value is validated when decoded.
func skipJSONValue(s string, i int) int {
	if i >= len(s) {
		return -1
	}
	depth := 0
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return i
			}
		}
	}
	if depth != 0 {
		return -1
	}
	return i
}

// decodeTraceMeta reads the producer's span context from a "tm" value: a JSON
// string holding the propagation carrier as JSON ({"traceparent": ...}), as
// bullmq-otel writes it; a carrier object in place of the string is accepted too.
func decodeTraceMeta(raw string) trace.SpanContext {
	var carrier traceCarrier
	if !carrier.scan(raw) && !carrier.decode(raw) {
		return trace.SpanContext{}
	}
	// A local propagator: the global one is never configured by this program.
	ctx := propagation.TraceContext{}.Extract(context.Background(), &carrier)
	return trace.SpanContextFromContext(ctx)
}

// traceCarrier holds the two W3C trace-context fields of a "tm" carrier; a
// struct decodes with fewer allocations than a map.
type traceCarrier struct {
	Traceparent string `json:"traceparent"`
	Tracestate  string `json:"tracestate"`
}

// scan reads the usual "tm" form without encoding/json, which costs several
// times more than the rest of reading a job: a JSON string whose only escapes
// are \" around a flat object of plain strings. It reports false for any
// other form, which decode then reads.
func (c *traceCarrier) scan(raw string) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	obj := raw[1 : len(raw)-1]
	if strings.Count(obj, `\`) != strings.Count(obj, `\"`) {
		return false
	}
	obj = strings.ReplaceAll(obj, `\"`, `"`)
	i := skipJSONSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipJSONSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		key, next, ok := plainString(obj, i)
		if !ok {
			return false
		}
		if i = skipJSONSpace(obj, next); i >= len(obj) || obj[i] != ':' {
			return false
		}
		value, next, ok := plainString(obj, skipJSONSpace(obj, i+1))
		if !ok {
			return false
		}
		switch key {
		case "traceparent":
			c.Traceparent = value
		case "tracestate":
			c.Tracestate = value
		}
		switch i = skipJSONSpace(obj, next); {
		case i < len(obj) && obj[i] == ',':
			i = skipJSONSpace(obj, i+1)
		case i < len(obj) && obj[i] == '}':
			return true
		default:
			return false
		}
	}
	return false
}

// plainString reads a JSON string without escapes at s[i].
func plainString(s string, i int) (value string, next int, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	end := strings.IndexAny(s[i+1:], `"\`)
	if end < 0 || s[i+1+end] != '"' {
		return "", 0, false
	}
	return s[i+1 : i+1+end], i + 2 + end, true
}

// decode reads any valid "tm" form with encoding/json.
func (c *traceCarrier) decode(raw string) bool {
	carrierJSON := []byte(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(carrierJSON, &s) != nil {
			return false
		}
		carrierJSON = []byte(s)
	}
	*c = traceCarrier{}
	return json.Unmarshal(carrierJSON, c) == nil
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
