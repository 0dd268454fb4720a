package audit_test

import (
	"encoding/hex"
	"math"
	"strings"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// RecordHashSum and HashSum are the allocation-free forms verification
// uses; they must give exactly what ComputeRecordHash and ComputeHash give.
func TestHashSumsAgree(t *testing.T) {
	recs := eventgen.New(31).Records(2000, "sums")
	latency := func(f float64) *float64 { return &f }
	edge := []audit.Record{
		{}, // every field empty, no latency, no details
		{Event: audit.Event{ProcessingLatency: latency(0)}},
		{Event: audit.Event{ProcessingLatency: latency(math.Copysign(0, -1))}},
		{Event: audit.Event{ProcessingLatency: latency(-math.MaxFloat64)}},
		{Event: audit.Event{ProcessingLatency: latency(5e-324)}},
		{Event: audit.Event{ProcessingLatency: latency(1.0000000000000002)}},
		{Event: audit.Event{ProcessingLatency: latency(123456789012345678)}},
		{Event: audit.Event{Action: "é.读.\U0001F600", OrganizationID: "org\u2028x", OutcomeDescription: "\"quoted\" \\ \t",
			PrincipalID: "\x00\x7f", Status: "failure", Timestamp: "2026-01-01T00:00:00Z", Details: []byte(`{"ü":"ß"}`)},
			IdempotencyKey: "ключ", Source: "源"},
		{Event: audit.Event{Details: []byte("{}")}, IdempotencyKey: strings.Repeat("k", 127), Source: strings.Repeat("s", 128)},
		{Event: audit.Event{Details: []byte(`{"big":"` + strings.Repeat("x", 1<<20) + `"}`), ProcessingLatency: latency(12.5)}},
		{Event: audit.Event{TargetResourceType: "", TargetResourceID: "", CorrelationID: strings.Repeat("c", 300)}},
	}
	var buf []byte
	for i, r := range append(recs, edge...) {
		// Each field emptied in turn, and the latency removed, on a few records.
		variants := []audit.Record{r}
		if i < 50 {
			v := r
			v.ProcessingLatency = nil
			variants = append(variants, v)
			v.Details, v.Hash, v.Signature, v.Action = nil, "", "", ""
			variants = append(variants, v)
		}
		for _, v := range variants {
			var sum [32]byte
			sum, buf = v.RecordHashSum(buf)
			if got, want := hex.EncodeToString(sum[:]), v.ComputeRecordHash(); got != want {
				t.Fatalf("record %d: RecordHashSum %s, ComputeRecordHash %s", i, got, want)
			}
			sum, buf = v.HashSum(buf)
			if got, want := hex.EncodeToString(sum[:]), v.ComputeHash(); got != want {
				t.Fatalf("record %d: HashSum %s, ComputeHash %s", i, got, want)
			}
		}
	}
}

func TestHashSumsAllocateNothing(t *testing.T) {
	r := eventgen.New(32).Records(1, "sums")[0]
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		_, buf = r.RecordHashSum(buf)
		_, buf = r.HashSum(buf)
	}); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}
