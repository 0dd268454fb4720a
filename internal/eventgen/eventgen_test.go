package eventgen

import (
	"errors"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

func TestGeneratedEventsAreWhatTheySay(t *testing.T) {
	g := New(1)
	g.HMACKey = []byte("test-secret-key-for-testing-purposes-only")
	now := time.Now()
	for range 200 {
		ev, _, err := audit.ParseEvent(g.Valid(), audit.DefaultRules(), now)
		if err != nil {
			t.Fatalf("valid event refused: %v", err)
		}
		if len(ev.Details) < 250 {
			t.Fatalf("details are %d bytes, want about 300", len(ev.Details))
		}
		if res, err := audit.VerifyIntegrity(&ev, g.HMACKey); err != nil || res.SignatureStatus != audit.SignatureVerified {
			t.Fatalf("valid event does not verify: %+v %v", res, err)
		}

		tampered, _, err := audit.ParseEvent(g.Tampered(), audit.DefaultRules(), now)
		if err != nil {
			t.Fatalf("tampered event should still be valid: %v", err)
		}
		if _, err := audit.VerifyIntegrity(&tampered, g.HMACKey); !audit.IsIntegrityViolation(err) {
			t.Fatalf("tampered event verified: %v", err)
		}

		invalid, code := g.Invalid()
		_, _, err = audit.ParseEvent(invalid, audit.DefaultRules(), now)
		var ve *audit.ValidationError
		if !errors.As(err, &ve) || ve.Errors[0].Code != code {
			t.Fatalf("invalid event: err = %v, want code %s", err, code)
		}
	}
}
