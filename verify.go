package audit

import "crypto/subtle"

// Check is one verification of a stored event: what the row says (Expected)
// against what is recomputed from it now (Found).
type Check struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Expected string `json:"expected,omitempty"`
	Found    string `json:"found,omitempty"`
	// Note says why a check could not be made ("the producer sent no hash").
	Note string `json:"note,omitempty"`
}

// Verification is the result of re-checking a stored event.
type Verification struct {
	Verified bool    `json:"verified"` // every check that could be made holds
	Checks   []Check `json:"checks"`
}

// Names of the checks of a stored event.
const (
	CheckProducerHash = "producerHash" // the producer's SHA-256 over its 8 fields
	CheckSignature    = "signature"    // the producer's HMAC-SHA256 over that hash
	CheckRecordHash   = "recordHash"   // our hash over every stored value
	CheckInclusion    = "inclusion"    // the record hash is proven in the latest signed checkpoint
)

// VerifyStored recomputes, from the stored row alone, the producer hash, the
// HMAC signature (when the event has one and hmacKey is set) and the record
// hash, and compares them with what the row holds. Any stored value changed
// after ingest changes at least the record hash.
func VerifyStored(e *StoredEvent, hmacKey []byte) Verification {
	var checks []Check
	computed := e.ComputeHash()
	switch {
	case e.Hash == "":
		checks = append(checks, Check{Name: CheckProducerHash, OK: true, Found: computed,
			Note: "the producer sent no hash; nothing to compare"})
	default:
		checks = append(checks, Check{Name: CheckProducerHash, Expected: e.Hash, Found: computed,
			OK: subtle.ConstantTimeCompare([]byte(e.Hash), []byte(computed)) == 1})
	}
	switch {
	case e.Signature == "":
		checks = append(checks, Check{Name: CheckSignature, OK: true, Note: "the producer sent no signature"})
	case len(hmacKey) == 0:
		checks = append(checks, Check{Name: CheckSignature, OK: true, Expected: e.Signature,
			Note: "no HMAC key is configured to check the signature with"})
	case e.SignatureAlgorithm != "" && e.SignatureAlgorithm != "HMAC-SHA256":
		checks = append(checks, Check{Name: CheckSignature, OK: true, Expected: e.Signature,
			Note: "signed with " + e.SignatureAlgorithm + ", which needs the producer's public key"})
	default:
		// Over the hash as recomputed: a signature matching a rewritten hash
		// field would otherwise pass. The signature the key would make is
		// never shown: it would hand out valid MACs.
		checks = append(checks, Check{Name: CheckSignature, Expected: e.Signature,
			OK: VerifySignature(computed, e.Signature, hmacKey)})
	}
	record := e.ComputeRecordHash()
	checks = append(checks, Check{Name: CheckRecordHash, Expected: e.RecordHash, Found: record,
		OK: subtle.ConstantTimeCompare([]byte(e.RecordHash), []byte(record)) == 1})
	v := Verification{Verified: true, Checks: checks}
	for _, c := range checks {
		v.Verified = v.Verified && c.OK
	}
	return v
}
