package notify

import (
	"errors"
	"strconv"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"id":"alt_1","severity":"HIGH"}`)
	sig := Sign("s3cret", ts, body)

	if err := Verify("s3cret", ts, body, sig, time.Minute, now.Add(30*time.Second)); err != nil {
		t.Fatalf("a good signature was refused: %v", err)
	}
	for name, tc := range map[string]struct {
		secret, ts, sig string
		body            []byte
		now             time.Time
		want            error
	}{
		"tampered body":     {"s3cret", ts, sig, []byte(`{"id":"alt_1","severity":"LOW"}`), now, ErrBadSignature},
		"wrong secret":      {"other", ts, sig, body, now, ErrBadSignature},
		"stale":             {"s3cret", ts, sig, body, now.Add(61 * time.Second), ErrStale},
		"far future":        {"s3cret", ts, sig, body, now.Add(-61 * time.Second), ErrStale},
		"timestamp changed": {"s3cret", strconv.FormatInt(now.Unix()+1, 10), sig, body, now, ErrBadSignature},
		"timestamp garbage": {"s3cret", "yesterday", sig, body, now, ErrStale},
		"no prefix":         {"s3cret", ts, sig[len("sha256="):], body, now, ErrBadSignature},
		"not hex":           {"s3cret", ts, "sha256=zz", body, now, ErrBadSignature},
		"empty":             {"s3cret", ts, "", body, now, ErrBadSignature},
	} {
		err := Verify(tc.secret, tc.ts, tc.body, tc.sig, time.Minute, tc.now)
		if !errors.Is(err, tc.want) || audit.ErrorCode(err) != audit.CodeUnauthorized {
			t.Errorf("%s: %v, want %v with code unauthorized", name, err, tc.want)
		}
	}
	// maxAge 0 is the default window.
	if err := Verify("s3cret", ts, body, sig, 0, now.Add(DefaultMaxAge+time.Second)); !errors.Is(err, ErrStale) {
		t.Errorf("default window: %v", err)
	}
}

func TestSignIsHMACOverTimestampDotBody(t *testing.T) {
	// From openssl: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
	const want = "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
	if got := Sign("key", "1700000000", []byte("{}")); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}
