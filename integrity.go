package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/smartlogs/audit-worker/internal/jsontext"
)

// The producer hash (original: CryptoService.generateHash) covers 8 fields. The
// canonical string lists them in JavaScript's default sort order as
// key + ":" + JSON.stringify(value), joined by "|"; the hash is the lowercase hex
// SHA-256 of its UTF-8 bytes. Optional fields that are falsy in JavaScript become
// null; the three required ones are rendered as they are (a missing one as the
// text "undefined", as a template literal renders it).
var hashedFields = [8]struct {
	name     string
	required bool
}{
	{"action", true}, {"organizationId", false}, {"outcomeDescription", false},
	{"principalId", false}, {"status", true}, {"targetResourceId", false},
	{"targetResourceType", false}, {"timestamp", true},
}

// jsValue is a JSON scalar as a JavaScript producer holds it.
type jsValue struct {
	kind byte   // 'u' undefined, 'n' null, 's' string, 'd' number, 'b' boolean
	text string // string value (WTF-8), number as float text, "true"/"false"
}

func (v jsValue) falsy() bool {
	switch v.kind {
	case 'u', 'n':
		return true
	case 's':
		return v.text == ""
	case 'b':
		return v.text == "false"
	case 'd':
		f, _ := strconv.ParseFloat(v.text, 64)
		return f == 0 || math.IsNaN(f)
	}
	return false
}

func (v jsValue) appendJSON(dst []byte) []byte {
	switch v.kind {
	case 'u':
		return append(dst, "undefined"...)
	case 's':
		return jsontext.AppendJSString(dst, v.text)
	case 'b':
		return append(dst, v.text...)
	case 'd':
		f, err := strconv.ParseFloat(v.text, 64)
		if err != nil || math.IsInf(f, 0) { // JSON.stringify(Infinity) is "null"
			return append(dst, "null"...)
		}
		return append(dst, jsontext.FormatJSNumber(f)...)
	}
	return append(dst, "null"...)
}

func canonicalString(values [8]jsValue) []byte {
	return appendCanonical(make([]byte, 0, 256), values)
}

func appendCanonical(out []byte, values [8]jsValue) []byte {
	for i, f := range hashedFields {
		if i > 0 {
			out = append(out, '|')
		}
		out = append(out, f.name...)
		out = append(out, ':')
		v := values[i]
		if !f.required && v.falsy() {
			v = jsValue{kind: 'n'}
		}
		out = v.appendJSON(out)
	}
	return out
}

func stringValue(s string) jsValue {
	if s == "" {
		return jsValue{kind: 'u'}
	}
	return jsValue{kind: 's', text: s}
}

// CanonicalString is the text the producer hash is computed over.
func (e *Event) CanonicalString() string {
	return string(canonicalString([8]jsValue{
		stringValue(e.Action), stringValue(e.OrganizationID), stringValue(e.OutcomeDescription),
		stringValue(e.PrincipalID), stringValue(string(e.Status)), stringValue(e.TargetResourceID),
		stringValue(e.TargetResourceType), stringValue(e.Timestamp),
	}))
}

// HashSum is ComputeHash as 32 bytes, for verifying many rows: the canonical
// string is written into buf (returned grown, for the next call).
func (e *Event) HashSum(buf []byte) ([32]byte, []byte) {
	buf = appendCanonical(buf[:0], [8]jsValue{
		stringValue(e.Action), stringValue(e.OrganizationID), stringValue(e.OutcomeDescription),
		stringValue(e.PrincipalID), stringValue(string(e.Status)), stringValue(e.TargetResourceID),
		stringValue(e.TargetResourceType), stringValue(e.Timestamp),
	})
	return sha256.Sum256(buf), buf
}

// ComputeHash returns the producer-compatible SHA-256 hex hash of the event.
func (e *Event) ComputeHash() string {
	sum := sha256.Sum256([]byte(e.CanonicalString()))
	return hex.EncodeToString(sum[:])
}

// HashPayload computes the producer hash of a raw event JSON without validating
// it, rendering whatever scalar values the 8 fields hold exactly as the producer
// would. It is the operator's tool for debugging producers.
func HashPayload(data []byte) (string, error) {
	members, err := jsontext.SplitObject(data, nil)
	if err != nil {
		return "", err
	}
	var values [8]jsValue
	for i, f := range hashedFields {
		values[i] = jsValue{kind: 'u'}
		for _, m := range members {
			if m.Key != f.name {
				continue
			}
			switch c := m.Raw[0]; {
			case c == '"':
				s, err := m.StringValue()
				if err != nil {
					return "", fmt.Errorf("%s: %w", f.name, err)
				}
				values[i] = jsValue{kind: 's', text: s}
			case c == 'n':
				values[i] = jsValue{kind: 'n'}
			case c == 't' || c == 'f':
				values[i] = jsValue{kind: 'b', text: string(m.Raw)}
			case c == '{' || c == '[':
				return "", fmt.Errorf("%s: objects and arrays are not supported in hashed fields", f.name)
			default:
				values[i] = jsValue{kind: 'd', text: string(m.Raw)}
			}
		}
	}
	sum := sha256.Sum256(canonicalString(values))
	return hex.EncodeToString(sum[:]), nil
}

// Sign returns the producer-compatible HMAC-SHA256 signature (lowercase hex) of a
// hex hash, keyed with the UTF-8 bytes of key (security.encryptionKey).
func Sign(hexHash string, key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(hexHash))
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks an HMAC-SHA256 hex signature in constant time.
func VerifySignature(hexHash, signature string, key []byte) bool {
	want := Sign(hexHash, key)
	return subtle.ConstantTimeCompare([]byte(want), []byte(signature)) == 1
}

// Integrity verification outcomes recorded with every stored event.
const (
	HashVerified = "verified" // the event carried a hash and it matched
	HashAbsent   = "absent"   // the event carried no hash

	SignatureVerified   = "verified"   // HMAC checked with the configured key
	SignatureAbsent     = "absent"     // no signature sent
	SignatureUnverified = "unverified" // sent, but no key (or a KMS algorithm) to check it with
)

// IntegrityResult is what verification found about an event.
type IntegrityResult struct {
	HashStatus      string
	SignatureStatus string
}

// ErrIntegrityViolation is wrapped by every integrity failure.
var ErrIntegrityViolation = &Error{Code: CodeIntegrity, Message: "event integrity violated"}

// VerifyIntegrity checks a provided hash against the event and, when hmacKey is
// set, an HMAC-SHA256 signature against the hash. A mismatch is an error wrapping
// ErrIntegrityViolation: the event must not be stored as valid.
func VerifyIntegrity(e *Event, hmacKey []byte) (IntegrityResult, error) {
	res := IntegrityResult{HashStatus: HashAbsent, SignatureStatus: SignatureAbsent}
	if e.Hash == "" && e.Signature == "" {
		return res, nil // nothing to check: skip hashing on the hot path
	}
	computed := e.ComputeHash()
	if e.Hash != "" {
		if subtle.ConstantTimeCompare([]byte(computed), []byte(e.Hash)) != 1 {
			return res, fmt.Errorf("hash %s does not match the event (computed %s): %w", e.Hash, computed, ErrIntegrityViolation)
		}
		res.HashStatus = HashVerified
	}
	if e.Signature == "" {
		return res, nil
	}
	res.SignatureStatus = SignatureUnverified
	if len(hmacKey) == 0 || (e.SignatureAlgorithm != "" && e.SignatureAlgorithm != "HMAC-SHA256") {
		return res, nil
	}
	if !VerifySignature(computed, e.Signature, hmacKey) {
		return res, fmt.Errorf("HMAC-SHA256 signature does not match the event hash: %w", ErrIntegrityViolation)
	}
	res.SignatureStatus = SignatureVerified
	return res, nil
}

// IsIntegrityViolation reports whether err is a hash or signature mismatch.
func IsIntegrityViolation(err error) bool { return errors.Is(err, ErrIntegrityViolation) }
