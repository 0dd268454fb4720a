package monitor

import (
	"encoding/binary"
	"fmt"
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
		// The first key again, a member sharing a prefix with the one before.
		{key: "FAILED_AUTH:principal:u-1", member: "q:1:1700000000001", at: 1_700_000_000_001, window: 300_000, threshold: 5,
			expireAt: 1_700_000_900_001, keep: 900_000},
		// The same key with another shape (a reload between two ops): its own.
		{key: "x", member: "üü", at: 7, window: 2, threshold: 3, expireAt: 9, keep: 4},
	}
	for _, enc := range []struct {
		name string
		fn   func([]op, []int) []byte
	}{{"shaped", encodeOps}, {"plain", encodePlain}} {
		b := enc.fn(ops, []int{0, 1, 2, 3, 4})
		got, err := decodeOps(nil, b)
		if err != nil {
			t.Fatalf("%s: %v", enc.name, err)
		}
		for i := range ops {
			if got[i] != strip(ops[i]) {
				t.Errorf("%s: op %d: got %+v, want %+v", enc.name, i, got[i], strip(ops[i]))
			}
		}
		if sub, _ := decodeOps(nil, enc.fn(ops, []int{2, 0})); len(sub) != 2 || sub[0].key != "x" || sub[1].key != ops[0].key {
			t.Errorf("%s: a subset in another order: %+v", enc.name, sub)
		}
		for _, bad := range [][]byte{nil, {}, {3}, b[:len(b)-1], append(slices.Clone(b), 0), {b[0], 200}} {
			if kept, err := decodeOps(ops[:1:1], bad); err == nil || len(kept) != 1 {
				t.Errorf("%s: decodeOps(%q): err %v, %d ops, want an error and the one op before it", enc.name, bad, err, len(kept))
			}
		}
	}
	// A shaped entry that names a shape it lacks, or shares more of the
	// previous member than it has.
	one := []byte{opsFormat, 1, 1, 'k', 0, 2, 0, 1}
	for _, bad := range [][]byte{
		append(slices.Clone(one), 1, 0, 0, 0, 0),   // shape 1 of 1
		append(slices.Clone(one), 0, 1, 0, 0, 0),   // shares 1 byte with no previous member
		append(slices.Clone(one), 0, 0, 5, 'a', 0), // a member longer than the entry
	} {
		if kept, err := decodeOps(nil, bad); err == nil || len(kept) != 0 {
			t.Errorf("decodeOps(%v): err %v, %d ops, want an error", bad, err, len(kept))
		}
	}
	if got, err := decodeOps(nil, append(slices.Clone(one), 0, 0, 1, 'a', 2, 4)); err != nil || len(got) != 1 || got[0].member != "a" || got[0].at != 1 || got[0].expireAt != 3 {
		t.Errorf("the well-formed one: %+v, %v", got, err)
	}
}

// A batch's entry is a few times smaller shaped than plain: on
// production-shaped traffic keys repeat and idempotency keys share prefixes.
func TestShapedEntriesAreSmaller(t *testing.T) {
	var ops []op
	for i := range 500 {
		ops = append(ops, op{key: fmt.Sprintf("DATA_VELOCITY:principal:org-riverside-health:user-%02d", i%40),
			member: fmt.Sprintf("bullmq:audit-events:%d:1765000000%03d", 120_000+i, i%1000), at: 1_765_000_000_000 + int64(i),
			window: 60_000, threshold: 50, expireAt: 1_765_000_420_000 + int64(i), keep: 420_000})
	}
	all := make([]int, len(ops))
	for i := range all {
		all[i] = i
	}
	shaped, plain := len(encodeOps(ops, all)), len(encodePlain(ops, all))
	if shaped*3 > plain {
		t.Fatalf("shaped entry %d bytes, plain %d: want at most a third", shaped, plain)
	}
	t.Logf("500 ops: shaped %d bytes, plain %d", shaped, plain)
}

func strip(o op) op {
	return op{key: o.key, member: o.member, at: o.at, window: o.window, threshold: o.threshold, expireAt: o.expireAt, keep: o.keep}
}

// encodePlain writes the plain format, as the previous release does.
func encodePlain(ops []op, which []int) []byte {
	dst := []byte{opsFormatPlain}
	dst = binary.AppendUvarint(dst, uint64(len(which)))
	prev := int64(0)
	for _, i := range which {
		o := &ops[i]
		dst = binary.AppendUvarint(dst, uint64(len(o.key)))
		dst = append(dst, o.key...)
		dst = binary.AppendUvarint(dst, uint64(len(o.member)))
		dst = append(dst, o.member...)
		dst = binary.AppendVarint(dst, o.at-prev)
		prev = o.at
		dst = binary.AppendVarint(dst, o.window)
		dst = binary.AppendVarint(dst, int64(o.threshold))
		dst = binary.AppendVarint(dst, o.expireAt-o.at)
		dst = binary.AppendVarint(dst, o.keep)
	}
	return dst
}
