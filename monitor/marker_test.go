package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestMarkersAreLoggedOnce: an off-hours marker a process holds already is
// not appended to the shared log again (a busy night would otherwise keep
// every off-hours event in Redis until morning), and another process still
// sees the first one before its own.
func TestMarkersAreLoggedOnce(t *testing.T) {
	a, b := sharedRedis(t)
	ctx := context.Background()
	now := time.Date(2024, 3, 5, 23, 0, 0, 0, time.UTC).UnixMilli()
	marker := func(member string) op {
		return op{key: "OFF_HOURS:night:2024-03-05:3:UTC:u-1", member: member, at: now, threshold: 1,
			expireAt: now + time.Hour.Milliseconds(), keep: time.Hour.Milliseconds(), pattern: PatternOffHours}
	}
	stream := a.logOf(string(PatternOffHours))
	entries := func() int64 {
		n, err := a.rdb.XLen(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	res, _, err := a.apply(ctx, now, 1000, []op{marker("k0")})
	if err != nil || !res[0].added {
		t.Fatalf("first marker: %+v, %v", res, err)
	}
	for i := 1; i <= 5; i++ {
		res, _, err := a.apply(ctx, now+int64(i), 1000, []op{marker(fmt.Sprintf("k%d", i))})
		if err != nil || res[0].added {
			t.Fatalf("repeat %d: %+v, %v; want not added", i, res, err)
		}
	}
	if n := entries(); n != 1 {
		t.Fatalf("the log holds %d entries after one marker and five repeats, want 1", n)
	}
	// The other process has not read the log yet: it logs its op, but reads
	// the first marker before it and adds nothing.
	res, _, err = b.apply(ctx, now+10, 1000, []op{marker("k9")})
	if err != nil || res[0].added {
		t.Fatalf("the other process: %+v, %v; want the marker already set", res, err)
	}
	if n := entries(); n != 2 {
		t.Fatalf("the log holds %d entries, want 2", n)
	}
}
