package bullmq

import (
	"fmt"
	"testing"
)

// tmOf is the "tm" opts value bullmq-otel writes: the carrier as a JSON string.
func tmOf(traceID, spanID string) string {
	return fmt.Sprintf(`"{\"traceparent\":\"00-%s-%s-01\"}"`, traceID, spanID)
}

func TestCutTraceMeta(t *testing.T) {
	tm := tmOf("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
	tests := []struct {
		name, opts, rest, tm string
	}{
		{"absent", `{"attempts":1}`, `{"attempts":1}`, ""},
		{"first", `{"tm":` + tm + `,"attempts":0}`, `{"attempts":0}`, tm},
		{"middle", `{"attempts":1,"tm":` + tm + `,"delay":0}`, `{"attempts":1,"delay":0}`, tm},
		{"last", `{"attempts":1,"tm":` + tm + `}`, `{"attempts":1}`, tm},
		{"only", `{"tm":` + tm + `}`, `{}`, tm},
		{"spaces", `{ "attempts" : 1 , "tm" : ` + tm + ` }`, `{ "attempts" : 1 }`, tm},
		{"after nested values", `{"backoff":{"type":"fixed","delay":5},"x":[1,"]"],"tm":` + tm + `}`,
			`{"backoff":{"type":"fixed","delay":5},"x":[1,"]"]}`, tm},
		{"only inside a string", `{"jobId":"\"tm\":1","attempts":1}`, `{"jobId":"\"tm\":1","attempts":1}`, ""},
		{"only nested", `{"parent":{"tm":"x"},"attempts":1}`, `{"parent":{"tm":"x"},"attempts":1}`, ""},
		{"malformed", `{"tm":`, `{"tm":`, ""},
		{"malformed after tm", `{"tm":` + tm + `,"attempts":}`, `{"tm":` + tm + `,"attempts":}`, ""},
		{"repeated", `{"tm":` + tm + `,"tm":` + tm + `}`, `{"tm":` + tm + `,"tm":` + tm + `}`, ""},
		{"not a string", `{"attempts":1,"tm":{"traceparent":"x"}}`, `{"attempts":1}`, `{"traceparent":"x"}`},
		{"not an object", `["tm"]`, `["tm"]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, got := cutTraceMeta(tt.opts)
			if rest != tt.rest || got != tt.tm {
				t.Fatalf("cutTraceMeta(%s) = %s, %s; want %s, %s", tt.opts, rest, got, tt.rest, tt.tm)
			}
		})
	}
}

func TestDecodeTraceMeta(t *testing.T) {
	const traceID, spanID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	for _, raw := range []string{
		tmOf(traceID, spanID),
		`{"traceparent":"00-` + traceID + `-` + spanID + `-01","tracestate":"vendor=x"}`,
	} {
		sc := decodeTraceMeta(raw)
		if !sc.IsValid() || sc.TraceID().String() != traceID || sc.SpanID().String() != spanID || !sc.IsRemote() || !sc.IsSampled() {
			t.Fatalf("decodeTraceMeta(%s) = %v", raw, sc)
		}
	}
	// Both readers give the same result: the fast scan of the usual form and
	// encoding/json for escapes it does not handle.
	for raw, state := range map[string]string{
		`"{\"traceparent\":\"00-` + traceID + `-` + spanID + `-01\",\"tracestate\":\"a=b\"}"`:       "a=b",
		`"{\"traceparent\":\"00-` + traceID + `-` + spanID + `-01\",\"tracestate\":\"a=\\u0062\"}"`: "a=b",
		`"{ \"x\" : \"y\" , \"traceparent\" : \"00-` + traceID + `-` + spanID + `-01\" }"`:          "",
	} {
		sc := decodeTraceMeta(raw)
		if sc.TraceID().String() != traceID || sc.SpanID().String() != spanID || sc.TraceState().String() != state {
			t.Fatalf("decodeTraceMeta(%s) = %v with tracestate %q", raw, sc, sc.TraceState().String())
		}
	}
	for _, raw := range []string{"", "null", `"{}"`, `"not json"`, `42`, `"{\"traceparent\":\"00-zz-yy-01\"}"`,
		`"{\"traceparent\":7}"`, `"{\"traceparent\":\"00-` + traceID + `-` + spanID + `-01\"`, `"\u12"`} {
		if sc := decodeTraceMeta(raw); sc.IsValid() {
			t.Fatalf("decodeTraceMeta(%s) = %v, want invalid", raw, sc)
		}
	}
}

func TestJobFromHashTraceContextSharesCachedOpts(t *testing.T) {
	var c optsCache
	a := jobFromHash("1", map[string]string{"opts": `{"tm":` + tmOf("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") + `,"attempts":3}`}, &c)
	b := jobFromHash("2", map[string]string{"opts": `{"tm":` + tmOf("11111111111111111111111111111111", "2222222222222222") + `,"attempts":3}`}, &c)
	plain := jobFromHash("3", map[string]string{"opts": `{"attempts":3}`}, &c)
	if a.TraceContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || b.TraceContext().SpanID().String() != "2222222222222222" {
		t.Fatalf("trace contexts = %v, %v", a.TraceContext(), b.TraceContext())
	}
	if plain.TraceContext().IsValid() {
		t.Fatal("a job without tm has a trace context")
	}
	if a.Opts.Attempts != 3 || b.Opts.Attempts != 3 || a.optsErr != nil {
		t.Fatalf("opts = %+v, %+v (%v)", a.Opts, b.Opts, a.optsErr)
	}
	if len(c.m) != 1 {
		t.Fatalf("cache holds %d entries, want 1: the trace context is not part of the cached options", len(c.m))
	}
}

func BenchmarkJobFromHashOpts(b *testing.B) {
	const plain = `{"attempts":1,"removeOnComplete":100,"removeOnFail":false,"priority":0}`
	traced := `{"attempts":1,"removeOnComplete":100,"tm":` + tmOf("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") + `,"removeOnFail":false,"priority":0}`
	for _, bc := range []struct{ name, opts string }{{"plain", plain}, {"traced", traced}} {
		b.Run(bc.name, func(b *testing.B) {
			var c optsCache
			h := map[string]string{"opts": bc.opts, "data": `{}`, "timestamp": "1"}
			b.ReportAllocs()
			for b.Loop() {
				jobFromHash("1", h, &c)
			}
		})
	}
}
