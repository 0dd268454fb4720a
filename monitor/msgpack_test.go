package monitor

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Redis's own MessagePack decoder (the one state.lua uses) reads back what
// msgpackBody writes, for every length class of strings and integers.
func TestMsgpackBodyDecodesInRedis(t *testing.T) {
	rdb := testRedis(t)
	var m msgpackBody
	var want []any
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("k", n)
		m.str(s)
		want = append(want, s)
	}
	for _, v := range []uint32{0, 1, 127, 128, 65536, 1 << 31} {
		m.uint(v)
		want = append(want, int64(v))
	}
	for _, v := range []int64{0, -5, 1764172800000} {
		m.decimal(v)
		want = append(want, fmt.Sprint(v))
	}
	// Returned as a Lua array: strings come back as strings, numbers as integers.
	got, err := rdb.Eval(context.Background(), "return cmsgpack.unpack(ARGV[1])", nil, m.bytes()).Slice()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Redis decoded %d values, want %d:\n got %.200v\nwant %.200v", len(got), len(want), got, want)
	}
}
