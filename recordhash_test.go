package audit

import "testing"

// The record hash is stored with every row and chained by checkpoints: its
// encoding must never change. The vector comes from a plain implementation
// that writes each field to a hash.Hash, independent of the buffered one.
func TestRecordHashVector(t *testing.T) {
	latency := 12.5
	r := Record{
		Event: Event{
			Timestamp: "2026-11-26T10:00:00.123Z", PrincipalID: "user-1", OrganizationID: "org-9",
			Action: "fhir.patient.read", TargetResourceType: "Patient", TargetResourceID: "p-42",
			Status: StatusSuccess, OutcomeDescription: "ok", Hash: "abc", HashAlgorithm: "SHA-256",
			EventVersion: "1.0", CorrelationID: "c-7", DataClassification: "PHI",
			ProcessingLatency: &latency, Details: []byte(`{"a": [1, "é"]}`),
		},
		IdempotencyKey: "audit-events:17:1764150000000", Source: "queue",
	}
	const want = "ce0b1419bb5a27480765879dbe739a4d60aa538bdedcd8f5a6341a3927973c4c"
	if got := r.ComputeRecordHash(); got != want {
		t.Fatalf("record hash %s, want %s", got, want)
	}
}
