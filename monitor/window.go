package monitor

import (
	"encoding/binary"
	"slices"
)

// windowFormat starts every encoded window, so that a later layout can be
// told apart.
const windowFormat = 1

// encodeWindow appends the form a small window has in Redis: the format
// byte, the entry count, then per entry its score's difference from the
// previous entry's (zig-zag varint, the first from zero) and its member,
// length-prefixed. Entries stay in their order (score, then member).
func encodeWindow(dst []byte, entries []entry) []byte {
	dst = append(dst, windowFormat)
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	prev := int64(0)
	for _, e := range entries {
		dst = binary.AppendVarint(dst, e.score-prev)
		prev = e.score
		dst = binary.AppendUvarint(dst, uint64(len(e.member)))
		dst = append(dst, e.member...)
	}
	return dst
}

// decodeWindow reads what encodeWindow wrote. ok is false for anything else,
// including entries out of order.
func decodeWindow(b []byte) (entries []entry, ok bool) {
	if len(b) == 0 || b[0] != windowFormat {
		return nil, false
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) { // every entry takes two bytes at least
		return nil, false
	}
	b = b[k:]
	entries = make([]entry, 0, n)
	prev := int64(0)
	for range n {
		d, k := binary.Varint(b)
		if k <= 0 {
			return nil, false
		}
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, false
		}
		b = b[k:]
		prev += d
		entries = append(entries, entry{score: prev, member: string(b[:l])})
		b = b[l:]
	}
	if len(b) != 0 || !slices.IsSortedFunc(entries, entryCmp) {
		return nil, false
	}
	return entries, true
}
