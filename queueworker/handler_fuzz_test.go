package queueworker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/pipeline"
)

// FuzzJobEvent decodes a job (its id, creation time and data, as read from
// Redis) into the pipeline's input and, when the event is refused, into the
// dead-letter entry. The input carries the data byte for byte under a key
// that fits the stores' unique index and is storable text, names the queue and, for BullMQ's
// numeric ids, the creation time; the dead letter is JSON whose
// originalEvent is the event (the same JSON value, or the data as a string
// when it is not JSON) under an id made of the key. The key reads back to the
// job it was made for, so no two jobs share one.
func FuzzJobEvent(f *testing.F) {
	f.Add("7", int64(1795696026823), []byte(`{"timestamp":"2026-01-01T00:00:00Z","action":"a","status":"success"}`))
	f.Add("redrive:dl-1", int64(0), []byte(`{"a": "<b>&"}`))
	f.Add(strings.Repeat("x", 300), int64(-1), []byte("not json"))
	f.Add("0007", int64(1), []byte(`[1, 2]`))
	f.Add("18446744073709551616", int64(5), []byte("\xff"))
	f.Add("1:5", int64(9), []byte(`{}`))
	f.Add("sha256:0000000000000000000000000000000000000000000000000000000000000000", int64(9), []byte(`{}`))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := NewHandler(Config{Queue: "audit-events", Now: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, id string, timestamp int64, data []byte) {
		j := &bullmq.Job{ID: id, Timestamp: timestamp, Data: data}
		in := h.inputOf(j)
		if !bytes.Equal(in.Payload, data) || in.Source != "bullmq:audit-events" || !in.ReceivedAt.Equal(time.UnixMilli(timestamp)) {
			t.Fatalf("job %q: input %+v", id, in)
		}
		key := in.IdempotencyKey
		if !strings.HasPrefix(key, "bullmq:audit-events:") || len(key) > len("bullmq:audit-events:")+maxKeyedJobID ||
			!utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
			t.Fatalf("job %q: key %q (%d bytes)", id, key, len(key))
		}
		if n, err := strconv.ParseUint(id, 10, 64); err == nil && strconv.FormatUint(n, 10) == id &&
			!strings.HasSuffix(key, ":"+id+":"+strconv.FormatInt(timestamp, 10)) {
			t.Fatalf("numeric job id %q created at %d: key %q", id, timestamp, key)
		}
		if key != IdempotencyKey("audit-events", j) {
			t.Fatal("the key is not the job's idempotency key")
		}
		if err := keyNamesJob(strings.TrimPrefix(key, "bullmq:audit-events:"), j); err != nil {
			t.Fatalf("job %q created at %d: key %q: %v", id, timestamp, key, err)
		}
		o := pipeline.Outcome{Status: pipeline.StatusRejected, Key: key, Reason: audit.ReasonValidation, Message: "invalid"}
		dl := h.deadLetterJob(j, o)
		var p DeadLetterPayload
		if err := json.Unmarshal(dl.Data, &p); err != nil {
			t.Fatalf("dead letter %q is not JSON: %v", dl.Data, err)
		}
		if p.IdempotencyKey != key || p.OriginalJobID != id && utf8.ValidString(id) || dl.Opts.JobID != deadLetterJobID(key) {
			t.Fatalf("dead letter %+v of job %q, key %q", p, id, key)
		}
		if json.Valid(data) {
			if !sameJSON(p.OriginalEvent, data) {
				t.Fatalf("data %q kept as %q", data, p.OriginalEvent)
			}
		} else if utf8.Valid(data) {
			var s string
			if err := json.Unmarshal(p.OriginalEvent, &s); err != nil || s != string(data) {
				t.Fatalf("data %q kept as %q", data, p.OriginalEvent)
			}
		}
	})
}

// keyNamesJob checks that the part of a key after its queue names exactly the
// job it was made for, read the one way a reader could read it: numeric id and
// creation time, a hashed custom id, or the custom id itself. Keys that read
// back to their jobs are keys no two jobs share.
func keyNamesJob(rest string, j *bullmq.Job) error {
	if n, created, ok := strings.Cut(rest, ":"); ok {
		_, errID := strconv.ParseUint(n, 10, 64)
		ts, errCreated := strconv.ParseInt(created, 10, 64)
		if errID == nil && errCreated == nil {
			if n != j.ID || ts != j.Timestamp {
				return fmt.Errorf("reads as numeric job %s created at %d", n, ts)
			}
			return nil
		}
	}
	if hashed, ok := strings.CutPrefix(rest, "sha256:"); ok {
		sum := sha256.Sum256([]byte(j.ID))
		if hashed != hex.EncodeToString(sum[:]) {
			return fmt.Errorf("reads as a hashed id that is not this job's")
		}
		return nil
	}
	if rest != j.ID {
		return fmt.Errorf("reads as custom id %q", rest)
	}
	return nil
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	decode := func(raw []byte) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}
