package monitor

import (
	"slices"
	"testing"
)

func TestWindowRoundTrip(t *testing.T) {
	for _, entries := range [][]entry{
		nil,
		{{score: 1795696026823, member: "audit-events:1:1795696026000"}},
		{{score: -5, member: ""}, {score: 0, member: "a"}, {score: 0, member: "b"}, {score: 1 << 50, member: "ü\x00:"}},
	} {
		got, ok := decodeWindow(encodeWindow(nil, entries))
		if !ok || !slices.Equal(got, entries) {
			t.Errorf("round trip of %v: %v, %v", entries, got, ok)
		}
	}
}

// A value that is not a window, or one whose entries are out of order, is
// refused (the key then counts as empty) rather than misread.
func TestDecodeWindowRefusesGarbage(t *testing.T) {
	good := encodeWindow(nil, []entry{{score: 10, member: "a"}, {score: 20, member: "b"}})
	unsorted := encodeWindow(nil, []entry{{score: 20, member: "b"}, {score: 10, member: "a"}})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"other format":   append([]byte{2}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(slices.Clone(good), 0),
		"huge count":     {windowFormat, 0xff, 0xff, 0x03},
		"out of order":   unsorted,
	} {
		if got, ok := decodeWindow(b); ok {
			t.Errorf("%s: decoded %v", name, got)
		}
	}
}
