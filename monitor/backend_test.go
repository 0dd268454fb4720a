package monitor

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// TestBackendsAgree feeds the same random traffic (bursts, out-of-order
// arrivals, redeliveries, time moving on) to both States and expects the very
// same conditions, evidence included.
func TestBackendsAgree(t *testing.T) {
	redisState, _ := backends()[1].shared(t)
	cfg := DefaultConfig()
	cfg.UnauthorizedAccess.Window = 20 * time.Second
	cfg.FailedAuth.Window = 15 * time.Second
	cfg.LateTolerance = 30 * time.Second
	mem := newHarness(t, NewMemoryState(), cfg)
	red := newHarness(t, redisState, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	var sent []ev
	for batch := range 60 {
		now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
		var evs []ev
		for i := range 1 + rng.IntN(8) {
			if len(sent) > 0 && rng.IntN(6) == 0 { // a redelivery
				evs = append(evs, sent[rng.IntN(len(sent))])
				continue
			}
			e := ev{
				key: fmt.Sprintf("b%d:%d", batch, i), action: "data.read", status: audit.StatusFailure,
				principal: fmt.Sprintf("u-%d", rng.IntN(3)), outcome: "Forbidden",
				at: now.Add(-time.Duration(rng.IntN(40000)) * time.Millisecond), // out of order, some late
			}
			if rng.IntN(2) == 0 {
				e.action, e.ip = "auth.login.failure", fmt.Sprintf("10.0.0.%d", rng.IntN(4))
			}
			evs = append(evs, e)
			sent = append(sent, e)
		}
		mem.clock.Set(now)
		red.clock.Set(now)
		mem.feed(evs...)
		red.feed(evs...)
	}
	a, b := mem.alerts.conditions(), red.alerts.conditions()
	if len(a) == 0 {
		t.Fatal("the traffic raised nothing; the test proves nothing")
	}
	if len(a) != len(b) {
		t.Fatalf("memory raised %d conditions, redis %d", len(a), len(b))
	}
	for i := range a {
		if a[i].DedupKey != b[i].DedupKey || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			t.Fatalf("condition %d differs:\nmemory %s %s\nredis  %s %s", i, a[i].DedupKey, a[i].Metadata, b[i].DedupKey, b[i].Metadata)
		}
	}
	t.Logf("%d conditions agree", len(a))
}
