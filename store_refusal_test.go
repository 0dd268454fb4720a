package audit

import (
	"slices"
	"testing"
	"time"
)

// A refused record's dead letter keeps the record's key, source, payload and
// arrival, and the database's reason as text any store can keep.
func TestRefusedDeadLetter(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Record{IdempotencyKey: "k", Source: "http", ReceivedAt: at, Payload: []byte("{\"a\":\"\x00\xff\"}")}
	tests := []struct{ reason, want string }{
		{"value too long (SQLSTATE 22001)", "value too long (SQLSTATE 22001)"},
		{"bad \x00 byte", "bad \uFFFD byte"},
		{"bad \xff\xfe utf-8", "bad \uFFFD utf-8"},
		{"", ""},
	}
	for _, tc := range tests {
		d := r.RefusedDeadLetter(tc.reason)
		if d.Message != tc.want || d.Reason != ReasonStoreRefused || d.IdempotencyKey != "k" || d.Source != "http" ||
			!d.ReceivedAt.Equal(at) || string(d.Payload) != string(r.Payload) {
			t.Errorf("RefusedDeadLetter(%q) = %+v, want message %q and the record's key, source, payload, arrival", tc.reason, d, tc.want)
		}
	}
}

func TestBatchWithDeadLetters(t *testing.T) {
	keys := func(dls []DeadLetter) []string {
		var out []string
		for _, d := range dls {
			out = append(out, d.IdempotencyKey+"/"+d.Reason)
		}
		return out
	}
	b := Batch{DeadLetters: []DeadLetter{{IdempotencyKey: "a", Reason: ReasonValidation}, {IdempotencyKey: "b", Reason: ReasonValidation}}}
	tests := []struct {
		name string
		more []DeadLetter
		want []string
	}{
		{"none", nil, []string{"a/validation_failed", "b/validation_failed"}},
		{"new keys", []DeadLetter{{IdempotencyKey: "c", Reason: ReasonStoreRefused}},
			[]string{"a/validation_failed", "b/validation_failed", "c/store_refused"}},
		{"a key the batch holds is written once", []DeadLetter{{IdempotencyKey: "b", Reason: ReasonStoreRefused}, {IdempotencyKey: "c", Reason: ReasonStoreRefused}, {IdempotencyKey: "c", Reason: ReasonStoreRefused}},
			[]string{"a/validation_failed", "b/validation_failed", "c/store_refused"}},
	}
	for _, tc := range tests {
		if got := keys(b.WithDeadLetters(tc.more)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if len(b.DeadLetters) != 2 {
		t.Errorf("WithDeadLetters changed the batch: %+v", b.DeadLetters)
	}
}
