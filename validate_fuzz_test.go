package audit

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/smartlogs/audit-worker/internal/jsontext"
)

// validationCodes are the codes a FieldError may carry.
var validationCodes = map[string]bool{ErrRequiredFieldMissing: true, ErrInvalidType: true, ErrInvalidFormat: true,
	ErrEmptyValue: true, ErrExceedsMaxLength: true, ErrInvalidValue: true, ErrExceedsMaxDepth: true}

// FuzzParseEvent holds ParseEvent to its contract on any bytes: a refusal is
// a *ValidationError (CodeInvalid) whose every entry has a known code and
// names its field (only a document that is not one JSON object, or is too
// large, has no field to name, unless the field's name is ""); an accepted event keeps every limit of the
// rules, its Details are one JSON object, and parsing the same bytes again
// gives the same event (the scratch memory it reuses leaks nothing).
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(validSample))
	f.Add([]byte(`{"timestamp":"2023-10-26T10:30:00Z","action":"a","status":"attempt","retentionPolicy":30,"processingLatency":1.5,"queueDepth":0}`))
	f.Add([]byte(`{"timestamp":"2023-10-26T10:30:00+05:30","action":"a","status":"failure","hash":"` + strings.Repeat("ab", 32) + `","hashAlgorithm":"SHA-256","signature":"s","algorithm":"HMAC-SHA256"}`))
	f.Add([]byte(`{"timestamp":"2016-12-31T23:59:60Z","action":"","status":"x","a":{"a":{"a":{"a":1}}},"a":2}`))
	f.Add([]byte(`{"timestamp":"1969-12-31T23:59:59Z","action":"\u0000","status":"success","sessionContext":{"sessionId":"s","ipAddress":"fe80::1%eth0","userAgent":"u"}}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"timestamp":null,"action":1,"status":true,"ttl":"\ud800"}`))
	rules := DefaultRules()
	rules.MaxEventBytes = 64 << 10 // the fuzzer's inputs stay far below; the size rule is tested apart
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, _, err := ParseEvent(data, rules, testNow)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ErrorCode(err) != CodeInvalid || len(ve.Errors) == 0 {
				t.Fatalf("refusal %v is not a *ValidationError with CodeInvalid and entries", err)
			}
			wholeDocument := jsontext.Check(data) != nil || len(bytes.TrimSpace(data)) == 0 || bytes.TrimSpace(data)[0] != '{'
			for _, fe := range ve.Errors {
				if !validationCodes[fe.Code] || fe.Message == "" {
					t.Fatalf("entry %+v: unknown code or no message", fe)
				}
				if fe.Field == "" && !wholeDocument && !bytes.Contains(data, []byte(`""`)) { // "" may be a key's name
					t.Fatalf("entry %+v names no field, though the document is one JSON object", fe)
				}
			}
			return
		}
		checkAccepted(t, ev, rules)
		again, _, err := ParseEvent(data, rules, testNow)
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("parsing the same bytes again gives %+v, %v; first %+v", again, err, ev)
		}
	})
}

// checkAccepted checks an accepted event against the rules it passed.
func checkAccepted(t *testing.T, ev Event, rules Rules) {
	t.Helper()
	p, ok := parseRFC3339(ev.Timestamp)
	if !ok || p.second == 60 || !p.instant().Truncate(time.Microsecond).Equal(ev.Time) {
		t.Fatalf("timestamp %q accepted, time %v", ev.Timestamp, ev.Time)
	}
	if ev.Time.Before(minEventTime) || !ev.Time.Before(endEventTime) || ev.Time.After(testNow.Add(rules.MaxFutureSkew)) {
		t.Fatalf("time %v is outside the accepted range", ev.Time)
	}
	if ev.Action == "" {
		t.Fatal("accepted an empty action")
	}
	switch ev.Status {
	case StatusAttempt, StatusSuccess, StatusFailure:
	default:
		t.Fatalf("accepted status %q", ev.Status)
	}
	if ev.DataClassification != "" && !containsClass(rules.AllowedClassifications, ev.DataClassification) {
		t.Fatalf("accepted classification %q", ev.DataClassification)
	}
	if ev.Hash != "" && !isLowerHex64(ev.Hash) {
		t.Fatalf("accepted hash %q", ev.Hash)
	}
	for name, s := range map[string]string{"action": ev.Action, "principalId": ev.PrincipalID, "organizationId": ev.OrganizationID,
		"targetResourceType": ev.TargetResourceType, "targetResourceId": ev.TargetResourceID, "outcomeDescription": ev.OutcomeDescription,
		"correlationId": ev.CorrelationID, "ttl": ev.TTL, "signature": ev.Signature, "eventVersion": ev.EventVersion,
		"retentionPolicy": ev.RetentionPolicy} {
		if n := utf8.RuneCountInString(s); n > rules.MaxStringLength {
			t.Fatalf("%s of %d characters accepted, the limit is %d", name, n, rules.MaxStringLength)
		}
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			t.Fatalf("%s %q holds what no store can keep", name, s)
		}
	}
	for name, s := range map[string]string{"principalId": ev.PrincipalID, "organizationId": ev.OrganizationID,
		"targetResourceType": ev.TargetResourceType, "targetResourceId": ev.TargetResourceID, "correlationId": ev.CorrelationID} {
		if len(s) > maxIndexedBytes {
			t.Fatalf("indexed field %s of %d bytes accepted", name, len(s))
		}
	}
	if ev.ProcessingLatency != nil && !(*ev.ProcessingLatency >= 0) {
		t.Fatalf("processingLatency %v accepted", *ev.ProcessingLatency)
	}
	if ev.Details != nil {
		if err := jsontext.Check(ev.Details); err != nil || ev.Details[0] != '{' {
			t.Fatalf("details %q are not one JSON object: %v", ev.Details, err)
		}
	}
}
