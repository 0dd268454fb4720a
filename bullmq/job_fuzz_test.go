package bullmq

import (
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/jsontext"
)

// jobHashSeeds are job hashes as producers write them: Node's BullMQ (cjson
// numbers, legacy attemptsMade), this package's producer, and broken ones.
var jobHashSeeds = []struct{ data, opts, atm, timestamp, stacktrace string }{
	{`{"action":"a"}`, `{"attempts":3,"backoff":{"type":"exponential","delay":1000},"removeOnComplete":true,"removeOnFail":{"count":5,"age":60}}`, "2", "1795696026823", `["Error: x"]`},
	{`{}`, `{"attempts":50,"backoff":{"type":"exponential","delay":1000}}`, "33", "1.795696026823e12", `[]`},
	{``, `{"attempts":"4","delay":"1e3","priority":2097152,"lifo":true,"jobId":7,"stackTraceLimit":2,"backoff":5000}`, "1.0", "0", ``},
	{`not json`, `{"tm":"{\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}","attempts":2,"backoff":{"type":"fixed","delay":9e15,"jitter":0.5}}`, "", "x", `{`},
	{`{"a":1}`, `[]`, "-1", "-5", ``},
	{`{"a":1}`, `{"attempts":2,"repeat":{"every":1000},"parent":null,"backoff":{"type":"custom"}}`, "9223372036854775807", "1e300", ``},
	{`{"a":1}`, `{"attempts":`, "0", "", ``},
	{`{"a":1}`, `{"attempts":3,"backoff":{"type":"fixed","delay":1000}}`, "9223372036854775807", "1", ``},
}

// FuzzJobFromHash decodes a job hash whose fields come from any producer.
// Never a panic; the job keeps its data (or "{}"); options read the same with
// and without the cache, and once read they survive their own encoding
// (what this package writes, it reads back the same); a job whose options
// cannot be read is unsupported, with the reason; and the retry decision
// keeps the attempts rule and gives a delay that is never negative and never
// wraps around (see checkBackoff).
func FuzzJobFromHash(f *testing.F) {
	for _, s := range jobHashSeeds {
		f.Add(s.data, s.opts, s.atm, s.timestamp, s.stacktrace)
	}
	var cache optsCache
	f.Fuzz(func(t *testing.T, data, opts, atm, timestamp, stacktrace string) {
		h := map[string]string{"name": "audit-events", "data": data, "opts": opts, "atm": atm, "timestamp": timestamp,
			"stacktrace": stacktrace, "ats": atm, "stc": timestamp, "processedOn": timestamp, "priority": atm}
		j := jobFromHash("1", h, nil)
		for _, n := range []struct {
			field string
			got   int64
		}{{"atm", int64(j.AttemptsMade)}, {"timestamp", j.Timestamp}} {
			if f, err := strconv.ParseFloat(h[n.field], 64); err == nil && math.Abs(f) < 1<<62 && math.Abs(float64(n.got)-f) > 1 {
				t.Fatalf("%s %q read as %d", n.field, h[n.field], n.got)
			}
		}
		if data == "" && string(j.Data) != "{}" || data != "" && string(j.Data) != data {
			t.Fatalf("data %q read as %q", data, j.Data)
		}
		cached := jobFromHash("1", h, &cache)
		if !reflect.DeepEqual(cached.Opts, j.Opts) || (cached.optsErr == nil) != (j.optsErr == nil) {
			t.Fatalf("opts %q: %+v (%v) without the cache, %+v (%v) with it", opts, j.Opts, j.optsErr, cached.Opts, cached.optsErr)
		}
		if j.optsErr != nil {
			if reason, ok := j.Unsupported(); !ok || reason == "" {
				t.Fatalf("opts %q cannot be read (%v), yet the job is supported", opts, j.optsErr)
			}
			return
		}
		encoded, err := json.Marshal(j.Opts)
		if err != nil {
			t.Fatalf("opts %+v cannot be encoded: %v", j.Opts, err)
		}
		var back JobOptions
		if err := back.UnmarshalJSON(encoded); err != nil {
			t.Fatalf("opts %s, as encoded, cannot be read: %v", encoded, err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(encoded) {
			t.Fatalf("opts %q encode as %s, which reads back as %s", opts, encoded, again)
		}
		checkBackoff(t, j)
	})
}

// checkBackoff holds BackoffDelay to BullMQ's rule: retry iff attemptsMade+1
// < attempts, after the fixed delay or delay*2^attemptsMade (milliseconds),
// spread by the jitter; a delay past what a time.Duration holds waits that
// longest duration instead of wrapping around to a short or negative one.
func checkBackoff(t *testing.T, j *Job) {
	t.Helper()
	d, retry := BackoffDelay(j)
	made, attempts := big.NewInt(int64(j.AttemptsMade)), big.NewInt(int64(j.Opts.Attempts))
	shouldRetry := j.DeferredFailure == "" && made.Add(made, big.NewInt(1)).Cmp(attempts) < 0
	if b := j.Opts.Backoff; b != nil && b.Type != BackoffFixed && b.Type != BackoffExponential {
		shouldRetry = false
	}
	if retry != shouldRetry {
		t.Fatalf("attemptsMade %d of %d attempts (backoff %+v): retry %v", j.AttemptsMade, j.Opts.Attempts, j.Opts.Backoff, retry)
	}
	if !retry {
		return
	}
	if d < 0 {
		t.Fatalf("backoff %+v after attempt %d: negative delay %v", *j.Opts.Backoff, j.AttemptsMade, d)
	}
	b := j.Opts.Backoff
	if b == nil || b.Jitter > 0 {
		return
	}
	want := float64(b.Delay)
	if b.Type == BackoffExponential {
		want = math.Round(want * math.Pow(2, float64(j.AttemptsMade)))
	}
	longest := float64(math.MaxInt64 / int64(time.Millisecond))
	switch {
	case want <= 0 && d != 0:
		t.Fatalf("backoff %+v after attempt %d: %v, want 0", *b, j.AttemptsMade, d)
	case want >= longest && d != time.Duration(longest)*time.Millisecond:
		t.Fatalf("backoff %+v after attempt %d: %v, want the longest delay", *b, j.AttemptsMade, d)
	case want > 0 && want < longest && d != time.Duration(want)*time.Millisecond:
		t.Fatalf("backoff %+v after attempt %d: %v, want %v ms", *b, j.AttemptsMade, d, want)
	}
}

// FuzzCutTraceMeta holds cutTraceMeta to taking out exactly the top-level
// "tm" member: the rest is the same object without it (its other members
// byte for byte, in order), tm is that member's raw value, and options
// without a single top-level "tm" come back whole.
func FuzzCutTraceMeta(f *testing.F) {
	for _, s := range []string{`{"attempts":1}`, `{"tm":"{\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}","attempts":0}`,
		`{ "attempts" : 1 , "tm" : "x" }`, `{"a":{"tm":1},"tm":{"traceparent":"x"}}`, `{"tm":1,"tm":2}`, `{"tm":`, `["tm"]`, `{"tm":"\"tm\""}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, opts string) {
		rest, tm := cutTraceMeta(opts)
		_ = decodeTraceMeta(tm) // never panics, whatever the carrier holds
		members, err := jsontext.SplitObjectString(opts, nil)
		at := -1
		for i, m := range members {
			if m.Key == "tm" {
				at = i
			}
		}
		if err != nil || at < 0 {
			if rest != opts || tm != "" {
				t.Fatalf("%q has no tm to cut, yet gives %q, %q", opts, rest, tm)
			}
			return
		}
		if tm != string(members[at].Raw) {
			t.Fatalf("%q: tm %q, the member holds %q", opts, tm, members[at].Raw)
		}
		left, err := jsontext.SplitObjectString(rest, nil)
		if err != nil || len(left) != len(members)-1 {
			t.Fatalf("%q: the rest %q is not the object without tm: %v", opts, rest, err)
		}
		for i, m := range append(members[:at:at], members[at+1:]...) {
			if left[i].Key != m.Key || string(left[i].Raw) != string(m.Raw) {
				t.Fatalf("%q: the rest %q changed member %q", opts, rest, m.Key)
			}
		}
	})
}
