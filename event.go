package audit

import (
	"bytes"
	"encoding/json"
	"time"
	"unsafe"

	"github.com/smartlogs/audit-worker/internal/jsontext"
)

// Status is the outcome of the audited action.
type Status string

const (
	StatusAttempt Status = "attempt"
	StatusSuccess Status = "success"
	StatusFailure Status = "failure"
)

// Classification is the sensitivity of the data the event is about.
type Classification string

const (
	ClassPublic       Classification = "PUBLIC"
	ClassInternal     Classification = "INTERNAL"
	ClassConfidential Classification = "CONFIDENTIAL"
	ClassPHI          Classification = "PHI"
)

// Event is a validated audit event, holding every value exactly as the producer
// sent it: strings are not trimmed, escaped or normalised, and Timestamp keeps its
// original text so that the producer hash can be verified again years later.
type Event struct {
	Timestamp          string    // as sent, e.g. "2023-10-26T10:30:00.000Z"
	Time               time.Time // Timestamp's instant in UTC to the microsecond, as the stores keep it; for partitioning and queries
	TTL                string
	PrincipalID        string
	OrganizationID     string
	Action             string
	TargetResourceType string
	TargetResourceID   string
	Status             Status
	OutcomeDescription string
	Hash               string // producer's SHA-256 hex over the 8 critical fields, if sent
	HashAlgorithm      string
	Signature          string // producer's signature over Hash, if sent
	SignatureAlgorithm string // the event's "algorithm" field
	EventVersion       string
	CorrelationID      string
	DataClassification Classification
	RetentionPolicy    string   // a numeric retentionPolicy is kept as its JSON text
	ProcessingLatency  *float64 // milliseconds, as reported by the producer
	SessionContext     *SessionContext
	// Details is a JSON object with every other top-level field (sessionContext,
	// queueDepth and custom fields included), raw and in source order; nil if none.
	Details json.RawMessage
}

// SessionContext describes the session the event happened in. It is stored in
// Details (as the original worker did) and exposed here already decoded.
type SessionContext struct {
	SessionID   string `json:"sessionId"`
	IPAddress   string `json:"ipAddress"`
	UserAgent   string `json:"userAgent"`
	Geolocation string `json:"geolocation,omitempty"`
}

// columnFields are the top-level fields that have their own place in Event (and a
// column in storage). Every other field goes to Details.
var columnFields = map[string]bool{
	"timestamp": true, "ttl": true, "principalId": true, "organizationId": true,
	"action": true, "targetResourceType": true, "targetResourceId": true, "status": true,
	"outcomeDescription": true, "hash": true, "hashAlgorithm": true, "signature": true,
	"algorithm": true, "eventVersion": true, "correlationId": true,
	"dataClassification": true, "retentionPolicy": true, "processingLatency": true,
}

// buildDetails writes the members that are not column fields as one JSON object,
// copying their raw bytes in source order.
func buildDetails(members []jsontext.Member) json.RawMessage {
	var out []byte
	for _, m := range members {
		if columnFields[m.Key] {
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, 512), '{')
		} else {
			out = append(out, ',')
		}
		out = jsontext.AppendJSString(out, m.Key)
		out = append(out, ':')
		out = append(out, m.Raw...)
	}
	if out == nil {
		return nil
	}
	return append(out, '}')
}

// SessionContextOf reads the session context back from stored details, the
// way validation read it from the event: string fields, anything else "".
// It returns nil when details hold no sessionContext object. Stores call it
// for every row they read, so it scans instead of decoding the details.
func SessionContextOf(details []byte) *SessionContext {
	if !bytes.Contains(details, []byte(`"sessionContext"`)) {
		return nil
	}
	// The details are split in place, without a copy of their own: nothing
	// of them outlives this call but the session context, which is copied
	// before its strings are taken.
	var scratch [24]jsontext.Member
	top, err := jsontext.SplitObjectString(unsafe.String(unsafe.SliceData(details), len(details)), scratch[:0])
	if err != nil {
		return nil
	}
	for i := range top {
		if top[i].Key != "sessionContext" || len(top[i].Raw) == 0 || top[i].Raw[0] != '{' {
			continue
		}
		var inner [8]jsontext.Member
		members, err := jsontext.SplitObjectString(string(top[i].Raw), inner[:0])
		if err != nil {
			return nil
		}
		sc := &SessionContext{}
		for _, m := range members {
			if len(m.Raw) == 0 || m.Raw[0] != '"' {
				continue
			}
			s, _ := m.StringValue()
			switch m.Key {
			case "sessionId":
				sc.SessionID = s
			case "ipAddress":
				sc.IPAddress = s
			case "userAgent":
				sc.UserAgent = s
			case "geolocation":
				sc.Geolocation = s
			}
		}
		return sc
	}
	return nil
}
