package jsontext

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// Check's verdicts on a document it refuses.
var (
	ErrNotUTF8 = errors.New("payload is not valid UTF-8")
	ErrNotJSON = errors.New("payload is not valid JSON")
)

// maxNesting bounds the recursion of Check (and so of the scanners, which
// only read what Check passed); events are refused far below it
// (validation.maxCustomFieldDepth), it only keeps hostile input from growing
// the stack.
const maxNesting = 10000

// Check reports whether data is exactly one JSON value (RFC 8259), with
// optional surrounding whitespace, in valid UTF-8: nil, ErrNotUTF8 (wherever
// the bad byte is) or ErrNotJSON. It does in one pass what utf8.Valid followed
// by json.Valid do in two; FuzzCheck holds it to their verdict.
func Check(data []byte) error {
	c := jsonChecker{data: data}
	c.space()
	err := c.value(0)
	if c.space(); err == nil && c.i != len(data) {
		err = ErrNotJSON
	}
	if err == ErrNotJSON && !utf8.Valid(data) {
		err = ErrNotUTF8 // bad encoding is the better reason, wherever it is
	}
	return err
}

type jsonChecker struct {
	data []byte
	i    int
}

func (c *jsonChecker) space() { c.i = SkipSpace(c.data, c.i) }

func (c *jsonChecker) peek() byte {
	if c.i < len(c.data) {
		return c.data[c.i]
	}
	return 0
}

func (c *jsonChecker) value(depth int) error {
	switch c.peek() {
	case '"':
		return c.string()
	case '{':
		return c.object(depth + 1)
	case '[':
		return c.array(depth + 1)
	case 't':
		return c.literal("true")
	case 'f':
		return c.literal("false")
	case 'n':
		return c.literal("null")
	default:
		return c.number()
	}
}

func (c *jsonChecker) object(depth int) error {
	if depth > maxNesting {
		return ErrNotJSON
	}
	c.i++ // '{'
	c.space()
	if c.peek() == '}' {
		c.i++
		return nil
	}
	for {
		if c.peek() != '"' {
			return ErrNotJSON
		}
		if err := c.string(); err != nil {
			return err
		}
		c.space()
		if c.peek() != ':' {
			return ErrNotJSON
		}
		c.i++
		c.space()
		if err := c.value(depth); err != nil {
			return err
		}
		if more, err := c.next('}'); !more {
			return err
		}
	}
}

func (c *jsonChecker) array(depth int) error {
	if depth > maxNesting {
		return ErrNotJSON
	}
	c.i++ // '['
	c.space()
	if c.peek() == ']' {
		c.i++
		return nil
	}
	for {
		if err := c.value(depth); err != nil {
			return err
		}
		if more, err := c.next(']'); !more {
			return err
		}
	}
}

// next reads what follows a member or element: a ',' (more follow) or the
// container's closing byte (done, err nil); anything else is an error.
func (c *jsonChecker) next(closing byte) (more bool, err error) {
	c.space()
	switch c.peek() {
	case ',':
		c.i++
		c.space()
		return true, nil
	case closing:
		c.i++
		return false, nil
	}
	return false, ErrNotJSON
}

func (c *jsonChecker) literal(word string) error {
	if len(c.data)-c.i < len(word) || string(c.data[c.i:c.i+len(word)]) != word {
		return ErrNotJSON
	}
	c.i += len(word)
	return nil
}

// string checks a string starting at its opening quote: no raw control
// characters, only JSON's escapes, and valid UTF-8.
func (c *jsonChecker) string() error {
	d := c.data
	i := c.i + 1
	for i < len(d) {
		i = skipPlainText(d, i)
		if i == len(d) {
			break
		}
		b := d[i]
		switch {
		case b == '"':
			c.i = i + 1
			return nil
		case b == '\\':
			if i+1 >= len(d) {
				return ErrNotJSON
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(d, i+2); !ok {
					return ErrNotJSON
				}
				i += 6
			default:
				return ErrNotJSON
			}
		case b < 0x20:
			return ErrNotJSON
		case b < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return ErrNotUTF8
			}
			i += size
		}
	}
	return ErrNotJSON
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *jsonChecker) number() error {
	d := c.data
	i := c.i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = digits(d, i)
	default:
		return ErrNotJSON
	}
	if i < len(d) && d[i] == '.' {
		if i+1 >= len(d) || !isDigit(d[i+1]) {
			return ErrNotJSON
		}
		i = digits(d, i+1)
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return ErrNotJSON
		}
		i = digits(d, i)
	}
	c.i = i
	return nil
}

func digits(d []byte, i int) int {
	for i < len(d) && isDigit(d[i]) {
		i++
	}
	return i
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Strings are most of an event's bytes, and most of their bytes need no
// attention: the scanners step over them a word (8 bytes) at a time, testing
// all 8 at once with the zero-byte tests of "Bit Twiddling Hacks". As a yes/no
// answer for the whole word each test is exact.
const (
	lowBits  = 0x0101010101010101 // 0x01 in every byte
	highBits = 0x8080808080808080 // 0x80 in every byte
)

// zeroBytes has the high bit set in (at least) the first zero byte of x, if
// any; exact as a test of whether x has a zero byte.
func zeroBytes(x uint64) uint64 { return (x - lowBits) &^ x & highBits }

// hasQuoteOrBackslash reports whether any byte of x is '"' or '\\'.
func hasQuoteOrBackslash(x uint64) bool {
	return zeroBytes(x^(lowBits*'"'))|zeroBytes(x^(lowBits*'\\')) != 0
}

// skipPlainText returns the index of the first 8-byte word at or after i that
// holds a byte needing a look ('"', '\\', a control character or a byte of a
// multi-byte UTF-8 sequence), or where fewer than 8 bytes are left.
func skipPlainText(d []byte, i int) int {
	for ; i+8 <= len(d); i += 8 {
		x := binary.LittleEndian.Uint64(d[i:])
		control := (x - lowBits*0x20) &^ x // a byte below 0x20
		// One branch for the four tests: x's own high bits are the bytes
		// of multi-byte sequences.
		if (x|control)&highBits|zeroBytes(x^(lowBits*'"'))|zeroBytes(x^(lowBits*'\\')) != 0 {
			return i
		}
	}
	return i
}
