package audit_test

import (
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

func storedFrom(r audit.Record) audit.StoredEvent { return audit.StoredEvent{Record: r, Seq: 1} }

func failing(v audit.Verification) []string {
	var names []string
	for _, c := range v.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	return names
}

func TestVerifyStored(t *testing.T) {
	key := []byte("a-producer-hmac-key-of-32-characters!")
	g := eventgen.New(7)
	g.HMACKey = key
	rec := g.Records(1, "test")[0]

	if v := audit.VerifyStored(&audit.StoredEvent{Record: rec}, key); !v.Verified || len(v.Checks) != 3 {
		t.Fatalf("untouched row: %+v", v)
	}
	cases := []struct {
		name   string
		change func(e *audit.StoredEvent)
		want   []string
	}{
		{"details changed", func(e *audit.StoredEvent) { e.Details = []byte(`{"x":1}`) }, []string{"recordHash"}},
		{"hashed field changed", func(e *audit.StoredEvent) { e.Action = "data.delete" },
			[]string{"producerHash", "signature", "recordHash"}},
		{"hashed field and both hashes rewritten", func(e *audit.StoredEvent) {
			e.PrincipalID = "mallory"
			e.Hash = e.ComputeHash()
			e.RecordHash = e.ComputeRecordHash()
		}, []string{"signature"}},
		{"signature replaced", func(e *audit.StoredEvent) { e.Signature = audit.Sign(e.Hash, []byte("another key")) },
			[]string{"signature", "recordHash"}},
		{"record hash replaced", func(e *audit.StoredEvent) { e.RecordHash = "00" }, []string{"recordHash"}},
	}
	for _, tc := range cases {
		e := storedFrom(rec)
		tc.change(&e)
		v := audit.VerifyStored(&e, key)
		got := failing(v)
		if v.Verified || len(got) != len(tc.want) {
			t.Errorf("%s: failing checks %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: failing checks %v, want %v", tc.name, got, tc.want)
			}
		}
	}

	// Without the key the signature is not checked, and the answer says so.
	v := audit.VerifyStored(&audit.StoredEvent{Record: rec}, nil)
	if !v.Verified || v.Checks[1].Note == "" {
		t.Errorf("no key: %+v", v)
	}
	// An event without a hash still has its record hash checked.
	plain := audit.NewRecord(audit.Event{Timestamp: "2026-01-01T00:00:00Z", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Action: "a", Status: audit.StatusSuccess}, "k", "test", audit.IntegrityResult{HashStatus: audit.HashAbsent, SignatureStatus: audit.SignatureAbsent}, time.Now())
	e := storedFrom(plain)
	e.Status = audit.StatusFailure
	if got := failing(audit.VerifyStored(&e, key)); len(got) != 1 || got[0] != "recordHash" {
		t.Errorf("no producer hash, status changed: failing %v", got)
	}
}
