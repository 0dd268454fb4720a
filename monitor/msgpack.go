package monitor

import (
	"encoding/binary"
	"strconv"
)

// msgpackBody writes the one MessagePack array state.lua reads its ops from
// (Redis's Lua has a MessagePack decoder, cmsgpack): one string argument
// instead of several per event, which costs Redis less to parse and the
// client no allocation per value. Only what the script needs is written:
// non-negative integers and strings.
type msgpackBody struct {
	buf []byte
	n   uint32 // elements written so far
}

// bytes returns the array: its header (the count is known only at the end)
// followed by the elements.
func (m *msgpackBody) bytes() []byte {
	out := make([]byte, 0, 5+len(m.buf))
	out = append(out, 0xdd) // array 32
	out = binary.BigEndian.AppendUint32(out, m.n)
	return append(out, m.buf...)
}

func (m *msgpackBody) uint(v uint32) {
	m.n++
	if v < 128 {
		m.buf = append(m.buf, byte(v)) // positive fixint
		return
	}
	m.buf = append(m.buf, 0xce) // uint 32
	m.buf = binary.BigEndian.AppendUint32(m.buf, v)
}

func (m *msgpackBody) str(s string) {
	m.n++
	m.strHeader(len(s))
	m.buf = append(m.buf, s...)
}

// decimal writes n as a string of its decimal digits, the form the script
// hands to Redis commands.
func (m *msgpackBody) decimal(n int64) {
	m.n++
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	m.strHeader(len(d))
	m.buf = append(m.buf, d...)
}

func (m *msgpackBody) strHeader(n int) {
	switch {
	case n < 32:
		m.buf = append(m.buf, 0xa0|byte(n)) // fixstr
	case n < 1<<8:
		m.buf = append(m.buf, 0xd9, byte(n)) // str 8
	case n < 1<<16:
		m.buf = append(m.buf, 0xda) // str 16
		m.buf = binary.BigEndian.AppendUint16(m.buf, uint16(n))
	default:
		m.buf = append(m.buf, 0xdb) // str 32
		m.buf = binary.BigEndian.AppendUint32(m.buf, uint32(n))
	}
}
