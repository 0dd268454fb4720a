package monitor

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// TestBackendsAgree feeds the same random traffic (bursts, out-of-order
// arrivals, redeliveries, events in the same millisecond, off-hours markers
// that expire, time moving on) to every State and expects the very same
// conditions, evidence included. RedisState runs twice: in one process, and
// in two processes on one log that take the batches in turn (each must apply
// the other's ops before its own to count as one process does).
func TestBackendsAgree(t *testing.T) {
	single, _ := sharedRedis(t)
	pa, pb := sharedRedis(t)
	cfg := DefaultConfig()
	cfg.UnauthorizedAccess.Window = 20 * time.Second
	// Windows of failed logins hold more members than an alert's evidence lists.
	cfg.FailedAuth.Window = 90 * time.Second
	cfg.LateTolerance = 30 * time.Second
	// Off hours from 14:00, when t0 is: successful reads set markers, and the
	// night ends (markers expire) while the traffic goes on.
	cfg.OffHoursStart, cfg.OffHoursEnd = 14, 15
	mem := newHarness(t, NewMemoryState(), cfg)
	two := newHarness(t, pa, cfg)
	// The second process shares the first's alert store and clock.
	second, err := New(cfg, Options{State: pb, Alerts: two.alerts, Now: two.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	twoB := &harness{Monitor: second, alerts: two.alerts, clock: two.clock}
	others := []*harness{newHarness(t, single, cfg), two}
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	var sent []ev
	for batch := range 1500 {
		now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
		var evs []ev
		for range 1 + rng.IntN(8) {
			if len(sent) > 0 && rng.IntN(6) == 0 { // a redelivery
				evs = append(evs, sent[rng.IntN(len(sent))])
				continue
			}
			e := ev{
				// Keys of different lengths and digits: members of equal
				// score are ordered byte by byte, as a sorted set orders them.
				key: fmt.Sprintf("b%d:%d", batch, rng.IntN(200)), action: "data.read", status: audit.StatusFailure,
				principal: fmt.Sprintf("u-%d", rng.IntN(3)), outcome: "Forbidden",
				at: now.Add(-time.Duration(rng.IntN(40000)) * time.Millisecond), // out of order, some late
			}
			switch rng.IntN(4) {
			case 0:
				e.action, e.ip = "auth.login.failure", fmt.Sprintf("10.0.0.%d", rng.IntN(4))
			case 1:
				e.status, e.outcome = audit.StatusSuccess, "ok" // an off-hours read
			}
			if len(sent) > 0 && rng.IntN(4) == 0 { // the same millisecond as an earlier event
				e.at = sent[rng.IntN(len(sent))].at
			}
			evs = append(evs, e)
			sent = append(sent, e)
		}
		mem.clock.Set(now)
		mem.feed(evs...)
		for _, h := range others {
			h.clock.Set(now)
			if h == two && batch%2 == 1 {
				h = twoB
			}
			h.feed(evs...)
		}
	}
	a := mem.alerts.conditions()
	byPattern := map[string]int{}
	for _, c := range a {
		byPattern[strings.SplitN(c.DedupKey, ":", 2)[0]]++
	}
	for _, p := range []Pattern{PatternFailedAuth, PatternUnauthorizedAccess, PatternOffHours} {
		if byPattern[string(p)] == 0 {
			t.Fatalf("the traffic raised no %s (raised %v); the test proves too little", p, byPattern)
		}
	}
	for n, h := range others {
		b := h.alerts.conditions()
		if len(a) != len(b) {
			t.Fatalf("memory raised %d conditions, redis %d %d", len(a), n, len(b))
		}
		for i := range a {
			if a[i].DedupKey != b[i].DedupKey || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
				t.Fatalf("condition %d differs:\nmemory  %s %s\nredis %d %s %s", i, a[i].DedupKey, a[i].Metadata, n, b[i].DedupKey, b[i].Metadata)
			}
		}
	}
	// Each of the two processes applied the other's ops.
	for _, st := range []*RedisState{pa, pb} {
		if replayed, malformed := st.LogStats(); replayed == 0 || malformed != 0 {
			t.Fatalf("replayed %d ops, %d malformed entries: want the other process's ops, all readable", replayed, malformed)
		}
	}
	t.Logf("%d conditions agree (%v)", len(a), byPattern)
}
