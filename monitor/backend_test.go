package monitor

import (
	"bytes"
	"context"
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
// conditions, evidence included. RedisState runs twice: with small windows in
// its hash (up to a limit this traffic's windows cross) and with sorted sets
// from the second member on.
func TestBackendsAgree(t *testing.T) {
	smallWindows, _ := sharedRedis(t, 24)
	sortedSets, _ := sharedRedis(t, 1)
	cfg := DefaultConfig()
	cfg.UnauthorizedAccess.Window = 20 * time.Second
	// Windows of failed logins hold more members than an alert's evidence lists.
	cfg.FailedAuth.Window = 90 * time.Second
	cfg.LateTolerance = 30 * time.Second
	// Off hours from 14:00, when t0 is: successful reads set markers, and the
	// night ends (markers expire) while the traffic goes on.
	cfg.OffHoursStart, cfg.OffHoursEnd = 14, 15
	mem := newHarness(t, NewMemoryState(), cfg)
	others := []*harness{newHarness(t, smallWindows, cfg), newHarness(t, sortedSets, cfg)}
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
	// Every window starts in the hash; some must have grown into sets.
	rdb := testRedis(t)
	ctx := context.Background()
	sets := 0
	for _, k := range rdb.Keys(ctx, smallWindows.base+"*").Val() {
		if rdb.Type(ctx, k).Val() == "zset" && k != smallWindows.index {
			sets++
		}
	}
	if sets == 0 {
		t.Fatal("no window grew into a sorted set: the traffic did not cross the limit")
	}
	t.Logf("%d conditions agree (%v); %d windows grew into sorted sets", len(a), byPattern, sets)
}
