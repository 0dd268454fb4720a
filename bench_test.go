package audit_test

import (
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// BenchmarkParseVerifyRecord is the worker's CPU cost per event before storage:
// decode and validate, verify hash and HMAC signature, build the record and its hash.
func BenchmarkParseVerifyRecord(b *testing.B) {
	g := eventgen.New(1)
	key := []byte("test-secret-key-for-testing-purposes-only")
	g.HMACKey = key
	payloads := make([][]byte, 1000)
	for i := range payloads {
		payloads[i] = g.Valid()
	}
	rules := audit.DefaultRules()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev, _, err := audit.ParseEvent(payloads[i%len(payloads)], rules, now)
		if err != nil {
			b.Fatal(err)
		}
		res, err := audit.VerifyIntegrity(&ev, key)
		if err != nil {
			b.Fatal(err)
		}
		_ = audit.NewRecord(ev, "k", "bench", res, now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkParseEvent is decoding and validation alone, on realistic events.
func BenchmarkParseEvent(b *testing.B) {
	g := eventgen.New(1)
	payloads := make([][]byte, 1000)
	for i := range payloads {
		payloads[i] = g.Valid()
	}
	rules := audit.DefaultRules()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := audit.ParseEvent(payloads[i%len(payloads)], rules, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
