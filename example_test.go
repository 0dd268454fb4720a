package audit_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// login is an event as a Node producer sends it: the hash covers the eight
// critical fields (action, organizationId, outcomeDescription, principalId,
// status, targetResourceId, targetResourceType, timestamp).
const login = `{"timestamp":"2023-10-26T10:30:00.000Z","action":"userLogin","status":"success",
	"principalId":"user-12345","organizationId":"org-67890","targetResourceType":"User",
	"targetResourceId":"user-12345","outcomeDescription":"User logged in successfully",
	"sessionContext":{"sessionId":"s-1","ipAddress":"192.0.2.10","userAgent":"curl/8"},
	"hash":"1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7","hashAlgorithm":"SHA-256"}`

// now is the reference instant of the clock-skew rule in these examples.
var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A valid event decodes into an Event; fields the schema does not name stay
// in Details byte for byte.
func ExampleParseEvent() {
	ev, warnings, err := audit.ParseEvent([]byte(login), audit.DefaultRules(), now)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println(ev.Action, ev.Status, ev.PrincipalID, ev.Time.Format(time.RFC3339Nano))
	fmt.Println("session from", ev.SessionContext.IPAddress)
	fmt.Println("details:", string(ev.Details))
	fmt.Println("warnings:", len(warnings))
	// Output:
	// userLogin success user-12345 2023-10-26T10:30:00Z
	// session from 192.0.2.10
	// details: {"sessionContext":{"sessionId":"s-1","ipAddress":"192.0.2.10","userAgent":"curl/8"}}
	// warnings: 0
}

// An invalid event is refused with every rule it breaks, each naming its
// field: a dead letter keeps them with the event's bytes.
func ExampleParseEvent_refused() {
	bad := `{"timestamp":"26/10/2023 10:30","action":"","status":"maybe","principalId":42,
		"sessionContext":{"ipAddress":"999.1.1.1"}}`
	_, _, err := audit.ParseEvent([]byte(bad), audit.DefaultRules(), now)
	var invalid *audit.ValidationError
	if errors.As(err, &invalid) {
		for _, fe := range invalid.Errors {
			fmt.Printf("%s: %s (%s)\n", fe.Field, fe.Message, fe.Code)
		}
	}
	fmt.Println("code:", audit.ErrorCode(err))
	// Output:
	// timestamp: must be an RFC 3339 timestamp with an offset, like 2023-10-26T10:30:00.000Z (INVALID_FORMAT)
	// action: must not be empty (EMPTY_VALUE)
	// status: must be one of attempt, success, failure (INVALID_VALUE)
	// principalId: must be a string (INVALID_TYPE)
	// sessionContext.sessionId: must be a non-empty string (INVALID_VALUE)
	// sessionContext.userAgent: must be a non-empty string (INVALID_VALUE)
	// sessionContext.ipAddress: must be an IPv4 or IPv6 address (INVALID_FORMAT)
	// code: invalid
}

// The producer hash is SHA-256 over the eight critical fields, rendered as
// the Node producer's JSON.stringify renders them; HashPayload computes it
// from raw bytes, Event.ComputeHash from a parsed event.
func ExampleHashPayload() {
	hash, err := audit.HashPayload([]byte(login))
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, _, _ := audit.ParseEvent([]byte(login), audit.DefaultRules(), now)
	fmt.Println(hash)
	fmt.Println(ev.ComputeHash() == hash, ev.Hash == hash)
	fmt.Println(ev.CanonicalString())
	// Output:
	// 1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7
	// true true
	// action:"userLogin"|organizationId:"org-67890"|outcomeDescription:"User logged in successfully"|principalId:"user-12345"|status:"success"|targetResourceId:"user-12345"|targetResourceType:"User"|timestamp:"2023-10-26T10:30:00.000Z"
}

// A producer signs the hash with HMAC-SHA256 under security.encryptionKey;
// VerifySignature checks it in constant time.
func ExampleSign() {
	key := []byte("the-producers-hmac-key-of-at-least-32-chars")
	hash := "1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7"
	sig := audit.Sign(hash, key)
	fmt.Println(sig)
	fmt.Println(audit.VerifySignature(hash, sig, key))
	fmt.Println(audit.VerifySignature(hash, sig, []byte("another-key-of-at-least-32-characters")))
	// Output:
	// a3ee6c2ace9dee1573e26b48c1da706f517275b7f80372bbbe3e2a75b203b27f
	// true
	// false
}

// VerifyIntegrity checks what an event carries: its hash against its fields
// and, with a key, its signature against the hash. An event changed after it
// was hashed is an integrity violation, never stored as valid.
func ExampleVerifyIntegrity() {
	key := []byte("the-producers-hmac-key-of-at-least-32-chars")
	signed := strings.Replace(login, `"hashAlgorithm"`,
		`"signature":"`+audit.Sign("1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7", key)+`","hashAlgorithm"`, 1)
	for _, payload := range []string{
		login,  // hashed, not signed
		signed, // hashed and signed
		strings.Replace(signed, `"status":"success"`, `"status":"failure"`, 1), // tampered with
	} {
		ev, _, err := audit.ParseEvent([]byte(payload), audit.DefaultRules(), now)
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		res, err := audit.VerifyIntegrity(&ev, key)
		if audit.IsIntegrityViolation(err) {
			fmt.Println("violation:", err)
			continue
		}
		fmt.Printf("hash %s, signature %s\n", res.HashStatus, res.SignatureStatus)
	}
	// Output:
	// hash verified, signature absent
	// hash verified, signature verified
	// violation: hash 1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7 does not match the event (computed 5f2037b2031866f02a196a9081d4bf2f52e76d1617effe4fbb34b057034f5b83): integrity: event integrity violated
}
