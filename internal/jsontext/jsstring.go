package jsontext

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reproduces how JavaScript's JSON.stringify renders strings and numbers,
// byte for byte, because the producer hash is defined over that rendering.
//
// Go strings are byte strings; JavaScript strings are UTF-16. A lone surrogate
// (valid in JavaScript, invalid in UTF-8) is carried here in WTF-8 form: the
// three-byte encoding of the surrogate code point. Unquote produces that form
// and AppendJSString renders it as JavaScript does (\udXXX).

const hexDigits = "0123456789abcdef"

// AppendJSString appends the JSON.stringify rendering of s to dst.
// It escapes only what JavaScript escapes: '"', '\\', the control characters
// U+0000–U+001F (short forms \b \t \n \f \r where they exist, else \u00xx) and
// lone surrogates (\udxxx). Everything else, including '<', '>', '&', U+007F,
// U+2028 and U+2029, is written raw.
func AppendJSString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		if cp, ok := surrogateAt(s, i); ok {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u',
				hexDigits[cp>>12&0xf], hexDigits[cp>>8&0xf], hexDigits[cp>>4&0xf], hexDigits[cp&0xf])
			i += 3
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not UTF-8 at all. JavaScript never holds such bytes; Node decodes them to
			// U+FFFD before the producer sees them, so render what the producer would hash.
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// surrogateAt reports whether s[i:] starts with the WTF-8 encoding of a
// surrogate code point (U+D800–U+DFFF) and returns that code point.
func surrogateAt(s string, i int) (rune, bool) {
	if i+2 >= len(s) || s[i] != 0xED || s[i+1] < 0xA0 || s[i+1] > 0xBF || s[i+2]&0xC0 != 0x80 {
		return 0, false
	}
	return 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), true
}

// appendWTF8 encodes r, which may be a surrogate code point, as UTF-8 (WTF-8 for surrogates).
func appendWTF8(dst []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(dst, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(dst, r)
}

// ErrBadString is returned by Unquote for a literal that is not a JSON string.
var ErrBadString = errors.New("malformed JSON string")

// Unquote decodes a JSON string literal (with its quotes) the way JSON.parse
// does, keeping lone surrogate escapes as WTF-8 instead of replacing them.
// The literal is expected to come from syntactically valid JSON.
func Unquote(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", ErrBadString
	}
	body := lit[1 : len(lit)-1]
	esc := -1
	for i, b := range body {
		if b == '\\' {
			esc = i
			break
		}
	}
	if esc < 0 {
		return string(body), nil
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:esc]...)
	for i := esc; i < len(body); {
		b := body[i]
		if b != '\\' {
			out = append(out, b)
			i++
			continue
		}
		if i+1 >= len(body) {
			return "", ErrBadString
		}
		switch body[i+1] {
		case '"', '\\', '/':
			out = append(out, body[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(body, i+2)
			if !ok {
				return "", ErrBadString
			}
			i += 6
			if r >= 0xD800 && r <= 0xDBFF && i+1 < len(body) && body[i] == '\\' && body[i+1] == 'u' {
				if lo, ok := hex4(body, i+2); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					out = utf8.AppendRune(out, 0x10000+(r-0xD800)<<10+(lo-0xDC00))
					i += 6
					continue
				}
			}
			out = appendWTF8(out, r)
			continue
		default:
			return "", ErrBadString
		}
		i += 2
	}
	return string(out), nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// FormatJSNumber renders f as JavaScript's Number.prototype.toString does
// (ECMAScript Number::toString with radix 10). Both Go and JavaScript pick the
// shortest digit string that round-trips, so only the layout differs.
func FormatJSNumber(f float64) string {
	if f == 0 {
		return "0" // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	k, n := len(digits), exp+1 // value = digits × 10^(n−k)
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	expSign := "+"
	if n-1 < 0 {
		expSign = "-"
	}
	expAbs := strconv.Itoa(abs(n - 1))
	if k == 1 {
		return sign + digits + "e" + expSign + expAbs
	}
	return sign + digits[:1] + "." + digits[1:] + "e" + expSign + expAbs
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
