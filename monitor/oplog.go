package monitor

import (
	"encoding/binary"
	"errors"
)

// Formats of an entry of the shared log; its first byte says which. Entries
// of both are read, so that processes of the previous release and this one
// count together while a deployment rolls.
const (
	// opsFormatPlain writes each op in full.
	opsFormatPlain = 1
	// opsFormat writes each state key once, with what is the same for all
	// its ops (window, threshold, keep), and per op a reference to it, its
	// member as the length shared with the previous op's and the rest, and
	// its times. A batch counts many events per key, and its idempotency
	// keys share long prefixes (queue names, job ids in sequence): an entry
	// is a few times smaller than plain.
	opsFormat = 2
)

// keyShape is what the ops of one state key in one entry share.
type keyShape struct {
	key               string
	window, threshold int64
	keep              int64
}

// encodeOps appends the form a batch's ops have in the shared log (format
// opsFormat): the format byte; the number of key shapes, then each as its key
// (length-prefixed), window, threshold and keep; the op count, then per op
// the index of its shape, the length of its member's prefix shared with the
// previous op's member and the rest (length-prefixed), its event time (as a
// difference from the previous op's) and how long after it the op expires.
// Numbers are varints (zig-zag when signed). Only what a State needs is
// written. It encodes the ops at the positions which lists, in that order.
func encodeOps(ops []op, which []int) []byte {
	shapes := make(map[keyShape]int)
	var order []keyShape
	index := make([]int, len(which))
	size := 16
	for n, i := range which {
		o := &ops[i]
		sh := keyShape{o.key, o.window, int64(o.threshold), o.keep}
		j, ok := shapes[sh]
		if !ok {
			j = len(order)
			shapes[sh] = j
			order = append(order, sh)
			size += len(o.key) + 16
		}
		index[n] = j
		size += len(o.member) + 12
	}
	dst := make([]byte, 0, size)
	dst = append(dst, opsFormat)
	dst = binary.AppendUvarint(dst, uint64(len(order)))
	for _, sh := range order {
		dst = binary.AppendUvarint(dst, uint64(len(sh.key)))
		dst = append(dst, sh.key...)
		dst = binary.AppendVarint(dst, sh.window)
		dst = binary.AppendVarint(dst, sh.threshold)
		dst = binary.AppendVarint(dst, sh.keep)
	}
	dst = binary.AppendUvarint(dst, uint64(len(which)))
	prev, prevMember := int64(0), ""
	for n, i := range which {
		o := &ops[i]
		shared := 0
		for shared < len(o.member) && shared < len(prevMember) && o.member[shared] == prevMember[shared] {
			shared++
		}
		dst = binary.AppendUvarint(dst, uint64(index[n]))
		dst = binary.AppendUvarint(dst, uint64(shared))
		dst = binary.AppendUvarint(dst, uint64(len(o.member)-shared))
		dst = append(dst, o.member[shared:]...)
		dst = binary.AppendVarint(dst, o.at-prev)
		dst = binary.AppendVarint(dst, o.expireAt-o.at)
		prev, prevMember = o.at, o.member
	}
	return dst
}

var errBadOps = errors.New("monitor: malformed ops in the shared log")

// decodeOps reads what encodeOps (or the plain format) wrote, appending to
// dst. On an error dst comes back as it was: an entry is applied whole or
// not at all.
func decodeOps(dst []op, b []byte) ([]op, error) {
	if len(b) == 0 {
		return dst, errBadOps
	}
	switch b[0] {
	case opsFormat:
		return decodeShaped(dst, b[1:])
	case opsFormatPlain:
		return decodePlain(dst, b[1:])
	}
	return dst, errBadOps
}

func decodeShaped(dst []op, b []byte) ([]op, error) {
	before := len(dst)
	r := opReader{b: b}
	nShapes := r.uvarint()
	if r.bad || nShapes > uint64(len(r.b)) { // every shape takes several bytes
		return dst, errBadOps
	}
	shapes := make([]keyShape, nShapes)
	for i := range shapes {
		shapes[i] = keyShape{key: r.str(), window: r.varint(), threshold: r.varint(), keep: r.varint()}
	}
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) { // every op takes several bytes
		return dst, errBadOps
	}
	// The entry's members are cut from one string: one allocation, not one
	// per op.
	members := make([]byte, 0, len(r.b))
	ends := make([]int, 0, n)
	prev, prevStart := int64(0), 0
	for range n {
		j := r.uvarint()
		shared := r.uvarint()
		rest := r.bytes()
		if r.bad || j >= nShapes || shared > uint64(len(members)-prevStart) {
			return dst[:before], errBadOps
		}
		start := len(members)
		members = append(members, members[prevStart:prevStart+int(shared)]...)
		members = append(members, rest...)
		ends = append(ends, len(members))
		prevStart = start
		sh := &shapes[j]
		o := op{key: sh.key, window: sh.window, threshold: int(sh.threshold), keep: sh.keep}
		o.at = prev + r.varint()
		prev = o.at
		o.expireAt = o.at + r.varint()
		if r.bad {
			return dst[:before], errBadOps
		}
		dst = append(dst, o)
	}
	if len(r.b) != 0 {
		return dst[:before], errBadOps
	}
	all, start := string(members), 0
	for i, end := range ends {
		dst[before+i].member = all[start:end]
		start = end
	}
	return dst, nil
}

func decodePlain(dst []op, b []byte) ([]op, error) {
	before := len(dst)
	r := opReader{b: b}
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

// bytes reads a length-prefixed run of bytes (sharing r's buffer).
func (r *opReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *opReader) str() string { return string(r.bytes()) }
