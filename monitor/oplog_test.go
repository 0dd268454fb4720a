package monitor

import (
	"math"
	"slices"
	"testing"
)

// The log's encoding round-trips every field a State needs, negative and
// extreme numbers included, and refuses anything it did not write.
func TestOpsRoundTrip(t *testing.T) {
	ops := []op{
		{key: "FAILED_AUTH:principal:u-1", member: "q:1:1700000000000", at: 1_700_000_000_000, window: 300_000, threshold: 5,
			expireAt: 1_700_000_900_000, keep: 900_000},
		{key: "OFF_HOURS:night:2024-03-05:5:org-1:u-1", member: "", at: -5, window: 0, threshold: 1, expireAt: 10, keep: 0},
		{key: "x", member: "ü", at: math.MaxInt64 / 2, window: 1, threshold: math.MaxInt32, expireAt: math.MaxInt64 / 2, keep: math.MaxInt32},
	}
	b := encodeOps(ops, []int{0, 1, 2})
	got, err := decodeOps(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(o op) op {
		return op{key: o.key, member: o.member, at: o.at, window: o.window, threshold: o.threshold, expireAt: o.expireAt, keep: o.keep}
	}
	for i := range ops {
		if got[i] != strip(ops[i]) {
			t.Errorf("op %d: got %+v, want %+v", i, got[i], strip(ops[i]))
		}
	}
	if sub, _ := decodeOps(nil, encodeOps(ops, []int{2, 0})); len(sub) != 2 || sub[0].key != "x" || sub[1].key != ops[0].key {
		t.Errorf("a subset in another order: %+v", sub)
	}
	for _, bad := range [][]byte{nil, {}, {2}, b[:len(b)-1], append(slices.Clone(b), 0), {opsFormat, 200}} {
		if kept, err := decodeOps(ops[:1:1], bad); err == nil || len(kept) != 1 {
			t.Errorf("decodeOps(%q): err %v, %d ops, want an error and the one op before it", bad, err, len(kept))
		}
	}
}
