package transparency

import (
	"encoding/hex"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// rowIntact is the fast form of the row checks: on rows changed in every way
// it must say what audit.VerifyStored and the integrated hash say together.
func TestIntactAgreesWithVerifyStored(t *testing.T) {
	key := []byte("intact-key")
	signed := eventgen.New(41)
	signed.HMACKey = key
	recs := append(signed.Records(300, "intact"), eventgen.New(42).Records(300, "intact")...)
	changes := []func(e *audit.StoredEvent){
		func(e *audit.StoredEvent) {},
		func(e *audit.StoredEvent) { e.PrincipalID += "x" },
		func(e *audit.StoredEvent) { e.Details = append(e.Details[:len(e.Details):len(e.Details)], ' ') },
		func(e *audit.StoredEvent) { e.Hash = "" },
		func(e *audit.StoredEvent) { e.Signature = "00" + e.Signature[min(2, len(e.Signature)):] },
		func(e *audit.StoredEvent) { e.SignatureAlgorithm = "RSA-SHA256" },
		func(e *audit.StoredEvent) { e.ProcessingLatency = nil },
		func(e *audit.StoredEvent) { e.RecordHash = e.RecordHash[:63] },
		// Rewritten together with its hashes: self-consistent, not integrated.
		func(e *audit.StoredEvent) {
			e.Action = "forged"
			e.Hash = e.ComputeHash()
			e.RecordHash = e.ComputeRecordHash()
		},
		// Rehashed without the producer hash matching.
		func(e *audit.StoredEvent) {
			e.Action = "forged"
			e.RecordHash = e.ComputeRecordHash()
		},
	}
	seen := map[bool]int{}
	for i, r := range recs {
		integrated, err := hex.DecodeString(r.RecordHash)
		if err != nil {
			t.Fatal(err)
		}
		for c, change := range changes {
			e := audit.StoredEvent{Record: r, Seq: int64(i + 1)}
			change(&e)
			le := audit.LeafEvent{Event: &e}
			copy(le.RecordHash[:], integrated)
			for _, k := range [][]byte{nil, key, []byte("another key")} {
				want := audit.VerifyStored(&e, k).Verified && e.RecordHash == r.RecordHash
				if got, _ := rowIntact(le, k, nil); got != want {
					t.Fatalf("record %d, change %d, key %q: intact %v, VerifyStored and the leaf say %v", i, c, k, got, want)
				}
				seen[want]++
			}
		}
	}
	if ok, _ := rowIntact(audit.LeafEvent{}, key, nil); ok {
		t.Fatal("a leaf without its row is intact")
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("outcomes %v: both must occur", seen)
	}
}
