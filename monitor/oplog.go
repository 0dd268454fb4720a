package monitor

import (
	"encoding/binary"
	"errors"
)

// opsFormat starts every encoded entry of the shared log, so that a later
// layout can be told apart.
const opsFormat = 1

// encodeOps appends the form a batch's ops have in the shared log: the format
// byte, the op count, then per op its key and member (length-prefixed), its
// event time (zig-zag varint, as a difference from the previous op's), its
// window and threshold, and how long after its event time it expires and how
// long the log keeps it. Only what a State needs is written. It encodes the
// ops at the positions which lists, in that order.
func encodeOps(ops []op, which []int) []byte {
	size := 11
	for _, i := range which {
		size += len(ops[i].key) + len(ops[i].member) + 16
	}
	dst := make([]byte, 0, size)
	dst = append(dst, opsFormat)
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

var errBadOps = errors.New("monitor: malformed ops in the shared log")

// decodeOps reads what encodeOps wrote, appending to dst. On an error dst
// comes back as it was: an entry is applied whole or not at all.
func decodeOps(dst []op, b []byte) ([]op, error) {
	before := len(dst)
	if len(b) == 0 || b[0] != opsFormat {
		return dst, errBadOps
	}
	r := opReader{b: b[1:]}
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) { // every op takes several bytes
		return dst, errBadOps
	}
	prev := int64(0)
	for range n {
		var o op
		o.key = r.str()
		o.member = r.str()
		o.at = prev + r.varint()
		prev = o.at
		o.window = r.varint()
		o.threshold = int(r.varint())
		o.expireAt = o.at + r.varint()
		o.keep = r.varint()
		if r.bad {
			return dst[:before], errBadOps
		}
		dst = append(dst, o)
	}
	if len(r.b) != 0 {
		return dst[:before], errBadOps
	}
	return dst, nil
}

// opReader reads varints and strings until the first error, which sets bad.
type opReader struct {
	b   []byte
	bad bool
}

func (r *opReader) uvarint() uint64 {
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[k:]
	return v
}

// varint reads a zig-zag varint, as binary.AppendVarint writes it.
func (r *opReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *opReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
