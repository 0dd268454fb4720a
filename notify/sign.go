package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Headers of a delivery.
const (
	HeaderTimestamp = "X-Audit-Timestamp" // Unix seconds when the request was signed
	HeaderSignature = "X-Audit-Signature" // "sha256=" + hex HMAC-SHA256 of "<timestamp>.<body>"
	HeaderDelivery  = "X-Audit-Delivery"  // the delivery id, the same for every attempt
)

// DefaultMaxAge is the replay window Verify applies when given none.
const DefaultMaxAge = 5 * time.Minute

var (
	// ErrBadSignature: the signature is missing, malformed or does not match.
	ErrBadSignature = errors.New("webhook signature does not match")
	// ErrStale: the timestamp is outside the accepted window (a replay, or a clock far off).
	ErrStale = errors.New("webhook timestamp outside the accepted window")
)

// Sign returns the X-Audit-Signature value for body sent at timestamp.
func Sign(secret, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver would: the timestamp must be within
// maxAge of now (either side, for clock skew; 0 means DefaultMaxAge), and the
// signature must be the HMAC of "<timestamp>.<body>" under secret, compared in
// constant time. The timestamp is covered by the MAC, so a replayed request
// cannot be given a fresh one. Errors wrap ErrStale or ErrBadSignature and
// carry audit.CodeUnauthorized.
func Verify(secret string, timestamp string, body []byte, signature string, maxAge time.Duration, now time.Time) error {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return audit.Errorf(audit.CodeUnauthorized, "verify webhook: timestamp %q is not Unix seconds: %w", timestamp, ErrStale)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return audit.Errorf(audit.CodeUnauthorized, "verify webhook: signed %s ago, limit %s: %w", age.Round(time.Second), maxAge, ErrStale)
	}
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || !hmac.Equal(got, mac(secret, timestamp, body)) {
		return audit.Errorf(audit.CodeUnauthorized, "verify webhook: %w", ErrBadSignature)
	}
	return nil
}
