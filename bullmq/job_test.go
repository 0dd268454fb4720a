package bullmq

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestJobOptionsParse(t *testing.T) {
	tests := []struct {
		name string
		opts string
		want func(t *testing.T, o JobOptions)
	}{
		{"node observed", `{"backoff":{"delay":1000,"type":"exponential"},"attempts":3}`, func(t *testing.T, o JobOptions) {
			wantEqual(t, "attempts", o.Attempts, 3)
			wantEqual(t, "backoff", *o.Backoff, Backoff{Type: "exponential", Delay: 1000})
		}},
		{"producer of this project", `{"removeOnComplete":100,"removeOnFail":false,"attempts":1,"priority":1}`, func(t *testing.T, o JobOptions) {
			wantEqual(t, "attempts", o.Attempts, 1)
			wantEqual(t, "priority", o.Priority, 1)
			c, _ := o.RemoveOnComplete.Limits()
			wantEqual(t, "removeOnComplete count", c, 100)
			c, _ = o.RemoveOnFail.Limits()
			wantEqual(t, "removeOnFail count", c, -1)
			wantEqual(t, "removeOnFail set", o.RemoveOnFail.IsSet(), true)
		}},
		{"cjson floats and exponents", `{"attempts":3.0,"delay":1e3,"backoff":2500,"stackTraceLimit":"2"}`, func(t *testing.T, o JobOptions) {
			wantEqual(t, "attempts", o.Attempts, 3)
			wantEqual(t, "delay", o.Delay, time.Second)
			wantEqual(t, "backoff", *o.Backoff, Backoff{Type: BackoffFixed, Delay: 2500})
			wantEqual(t, "stackTraceLimit", *o.StackTraceLimit, 2)
		}},
		{"keep object", `{"removeOnComplete":{"age":3600},"removeOnFail":{"count":5,"age":60},"attempts":0}`, func(t *testing.T, o JobOptions) {
			c, a := o.RemoveOnComplete.Limits()
			wantEqual(t, "complete", [2]int64{int64(c), int64(a)}, [2]int64{-1, int64(time.Hour)})
			c, a = o.RemoveOnFail.Limits()
			wantEqual(t, "fail", [2]int64{int64(c), int64(a)}, [2]int64{5, int64(time.Minute)})
		}},
		{"empty lua table", `{}`, func(t *testing.T, o JobOptions) {
			wantEqual(t, "attempts", o.Attempts, 0)
			wantEqual(t, "complete set", o.RemoveOnComplete.IsSet(), false)
		}},
		{"repeat and parent", `{"repeat":{"every":1000},"parent":{"id":"1","queue":"bull:p"},"attempts":0}`, func(t *testing.T, o JobOptions) {
			wantEqual(t, "repeat", o.Repeat, true)
			wantEqual(t, "parent", o.Parent, true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o JobOptions
			if err := json.Unmarshal([]byte(tt.opts), &o); err != nil {
				t.Fatal(err)
			}
			tt.want(t, o)
		})
	}
}

func TestJobOptionsMarshal(t *testing.T) {
	limit := 3
	o := JobOptions{Attempts: 2, Backoff: &Backoff{Type: BackoffFixed, Delay: 500, Jitter: 0.5},
		Delay: 2 * time.Second, Priority: 4, Lifo: true, JobID: "x-1",
		RemoveOnComplete: KeepLast(100), RemoveOnFail: KeepWithin(-1, 24*time.Hour), StackTraceLimit: &limit}
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "json", string(raw), `{"attempts":2,"backoff":{"delay":500,"jitter":0.5,"type":"fixed"},"delay":2000,`+
		`"jobId":"x-1","lifo":true,"priority":4,"removeOnComplete":100,"removeOnFail":{"age":86400},"stackTraceLimit":3}`)
	var back JobOptions
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	raw2, _ := json.Marshal(back)
	wantEqual(t, "round trip", string(raw2), string(raw))

	raw, _ = json.Marshal(JobOptions{RemoveOnComplete: RemoveAll(), RemoveOnFail: KeepAll()})
	wantEqual(t, "bools", string(raw), `{"attempts":0,"removeOnComplete":true,"removeOnFail":false}`)
}

func TestBackoffDelay(t *testing.T) {
	exp := &Backoff{Type: BackoffExponential, Delay: 1000}
	tests := []struct {
		name      string
		job       Job
		wantDelay time.Duration
		wantRetry bool
	}{
		{"default attempts", Job{}, 0, false},
		{"attempts 1", Job{Opts: JobOptions{Attempts: 1, Backoff: exp}}, 0, false},
		{"no backoff retries now", Job{Opts: JobOptions{Attempts: 2}}, 0, true},
		{"exp first", Job{Opts: JobOptions{Attempts: 3, Backoff: exp}}, time.Second, true},
		{"exp second", Job{AttemptsMade: 1, Opts: JobOptions{Attempts: 3, Backoff: exp}}, 2 * time.Second, true},
		{"exp exhausted", Job{AttemptsMade: 2, Opts: JobOptions{Attempts: 3, Backoff: exp}}, 0, false},
		{"exp fourth", Job{AttemptsMade: 3, Opts: JobOptions{Attempts: 10, Backoff: exp}}, 8 * time.Second, true},
		{"fixed", Job{AttemptsMade: 4, Opts: JobOptions{Attempts: 10, Backoff: &Backoff{Type: BackoffFixed, Delay: 700}}}, 700 * time.Millisecond, true},
		{"custom", Job{Opts: JobOptions{Attempts: 3, Backoff: &Backoff{Type: "linear", Delay: 10}}}, 0, false},
		{"deferred failure", Job{DeferredFailure: "job stalled more than allowable limit", Opts: JobOptions{Attempts: 3}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, retry := BackoffDelay(&tt.job)
			if d != tt.wantDelay || retry != tt.wantRetry {
				t.Errorf("BackoffDelay = %v, %v; want %v, %v", d, retry, tt.wantDelay, tt.wantRetry)
			}
		})
	}
	jit := &Job{AttemptsMade: 1, Opts: JobOptions{Attempts: 5, Backoff: &Backoff{Type: BackoffExponential, Delay: 1000, Jitter: 0.5}}}
	for range 200 {
		d, retry := BackoffDelay(jit)
		if !retry || d < time.Second || d >= 2*time.Second {
			t.Fatalf("jittered delay %v outside [1s, 2s)", d)
		}
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		name string
		hash map[string]string
		want string
	}{
		{"plain", map[string]string{"opts": `{"attempts":1}`}, ""},
		{"repeat opts", map[string]string{"opts": `{"repeat":{"pattern":"* * * * *"}}`}, "repeatable"},
		{"scheduler key", map[string]string{"opts": `{}`, "rjk": "sched-1"}, "repeatable"},
		{"flow", map[string]string{"opts": `{}`, "parentKey": "bull:p:1"}, "flow"},
		{"custom backoff", map[string]string{"opts": `{"backoff":{"type":"jittered-linear","delay":5}}`}, "custom backoff"},
		{"broken opts", map[string]string{"opts": `{"attempts":`}, "cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, bad := jobFromHash("1", tt.hash, nil).Unsupported()
			if bad != (tt.want != "") || !strings.Contains(reason, tt.want) {
				t.Errorf("Unsupported = %q, %v; want containing %q", reason, bad, tt.want)
			}
		})
	}
}

func TestJobFromHash(t *testing.T) {
	j := jobFromHash("7", map[string]string{
		"name": "audit-events", "data": `{"a":1}`, "opts": `{"attempts":3}`, "timestamp": "1795696026823",
		"attemptsMade": "2", "ats": "3.0", "stc": "1", "priority": "0", "processedOn": "1.795696028121e12",
	}, nil)
	wantEqual(t, "legacy attemptsMade", j.AttemptsMade, 2)
	wantEqual(t, "ats float", j.AttemptsStarted, 3)
	wantEqual(t, "processedOn exponent", j.ProcessedOn, int64(1795696028121))
	wantEqual(t, "timestamp", j.Timestamp, int64(1795696026823))
	j = jobFromHash("8", map[string]string{"atm": "1", "attemptsMade": "5"}, nil)
	wantEqual(t, "atm wins", j.AttemptsMade, 1)
	wantEqual(t, "missing data", string(j.Data), "{}")
}

func TestOptsCacheSharesParsedOptions(t *testing.T) {
	var c optsCache
	raw := `{"attempts":3,"backoff":{"type":"exponential","delay":1000},"removeOnComplete":100}`
	a := jobFromHash("1", map[string]string{"opts": raw}, &c)
	b := jobFromHash("2", map[string]string{"opts": raw}, &c)
	wantEqual(t, "attempts", b.Opts.Attempts, 3)
	wantEqual(t, "backoff delay", b.Opts.Backoff.Delay, int64(1000))
	wantEqual(t, "parsed once", a.Opts.Backoff == b.Opts.Backoff, true)
	bad := jobFromHash("3", map[string]string{"opts": `{"attempts":`}, &c)
	if _, ok := bad.Unsupported(); !ok {
		t.Error("unreadable options not reported through the cache")
	}
	for i := range optsCacheSize + 5 { // the cache stays bounded
		c.parse(fmt.Sprintf(`{"attempts":%d}`, i))
	}
	if len(c.m) > optsCacheSize {
		t.Errorf("cache holds %d entries", len(c.m))
	}
}
