package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// member is one top-level "key": value pair of an event, value kept as raw JSON.
type member struct {
	key string
	raw []byte
	// text is raw as a substring of the payload copied once into a string, so
	// string values without escapes need no allocation of their own.
	text string
	// depth is how many objects/arrays the value nests (a scalar is 0, {} is 1).
	depth int
	// problem names a string inside the value that no store can hold, or is "".
	problem string
}

// decodeObject splits a JSON object into its members in source order, without
// decoding the values. It rejects non-objects, invalid UTF-8 and duplicate keys
// (two parsers could disagree on which duplicate wins, which is an opening for
// smuggling values past the hash).
// Members are appended to dst (which may be nil), so callers can reuse it.
func decodeObject(data []byte, dst []member) ([]member, error) {
	if err := checkJSON(data); err != nil {
		return nil, err
	}
	text := string(data)
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, errors.New("payload is not a JSON object")
	}
	members := dst[:0]
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return members, nil
	}
	for {
		keyEnd, _, keyProblem := walkValue(data, i)
		key, err := unquoteText(text[i:keyEnd], data[i:keyEnd])
		if err != nil {
			return nil, fmt.Errorf("key at byte %d: %w", i, err)
		}
		for _, m := range members {
			if m.key == key {
				return nil, fmt.Errorf("duplicate key %q", key)
			}
		}
		i = skipSpace(data, keyEnd)
		i = skipSpace(data, i+1) // past ':'
		end, depth, problem := walkValue(data, i)
		if problem == "" && keyProblem != "" {
			problem = keyProblem + " in key"
		}
		members = append(members, member{key: key, raw: data[i:end], text: text[i:end], depth: depth, problem: problem})
		i = skipSpace(data, end)
		if data[i] == '}' {
			return members, nil
		}
		i = skipSpace(data, i+1) // past ','
	}
}

// stringValue decodes the member's value, a JSON string literal.
func (m *member) stringValue() (string, error) { return unquoteText(m.text, m.raw) }

// unquoteText decodes a string literal given both as a string and as bytes:
// without escapes the result is a substring of text and allocates nothing.
func unquoteText(text string, lit []byte) (string, error) {
	if len(text) >= 2 && text[0] == '"' && text[len(text)-1] == '"' && strings.IndexByte(text, '\\') < 0 {
		return text[1 : len(text)-1], nil
	}
	return unquoteJSON(lit)
}

// objectMembers splits a JSON object taken from an already validated payload into
// its members (last one wins for a repeated key, as in JavaScript). Keys that
// cannot be decoded are skipped.
func objectMembers(raw []byte) map[string][]byte {
	out := make(map[string][]byte, 4)
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return out
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		keyEnd, _, _ := walkValue(raw, i)
		key, err := unquoteJSON(raw[i:keyEnd])
		i = skipSpace(raw, skipSpace(raw, keyEnd)+1)
		end, _, _ := walkValue(raw, i)
		if err == nil {
			out[key] = raw[i:end]
		}
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return out
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// walkValue scans the syntactically valid JSON value starting at data[i] and returns
// where it ends, how deep it nests, and the first string problem found in it
// (a NUL character or a lone UTF-16 surrogate, neither of which PostgreSQL stores).
func walkValue(data []byte, i int) (end, depth int, problem string) {
	switch data[i] {
	case '"':
		return walkString(data, i)
	case '{', '[':
		maxChild := 0
		i++
		for {
			i = skipSpace(data, i)
			switch data[i] {
			case '}', ']':
				return i + 1, maxChild + 1, problem
			case ',', ':':
				i++
				continue
			}
			var d int
			var p string
			i, d, p = walkValue(data, i)
			if d > maxChild {
				maxChild = d
			}
			if problem == "" {
				problem = p
			}
		}
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i, 0, ""
			}
			i++
		}
		return i, 0, ""
	}
}

func walkString(data []byte, i int) (end, depth int, problem string) {
	i++ // opening quote
	pendingHigh := false
	for {
		if !pendingHigh { // otherwise the next byte decides
			i = skipToQuoteOrBackslash(data, i)
		}
		switch c := data[i]; c {
		case '"':
			if pendingHigh {
				problem = "lone UTF-16 surrogate"
			}
			return i + 1, 0, problem
		case '\\':
			if data[i+1] != 'u' {
				if pendingHigh {
					problem = "lone UTF-16 surrogate"
					pendingHigh = false
				}
				i += 2
				continue
			}
			r, _ := hex4(data, i+2)
			i += 6
			switch {
			case r == 0:
				problem = "NUL character"
			case r >= 0xD800 && r <= 0xDBFF:
				if pendingHigh {
					problem = "lone UTF-16 surrogate"
				}
				pendingHigh = true
				continue
			case r >= 0xDC00 && r <= 0xDFFF:
				if !pendingHigh {
					problem = "lone UTF-16 surrogate"
				}
			default:
				if pendingHigh {
					problem = "lone UTF-16 surrogate"
				}
			}
			pendingHigh = false
		default:
			if pendingHigh {
				problem = "lone UTF-16 surrogate"
				pendingHigh = false
			}
			i++
		}
	}
}

// skipToQuoteOrBackslash returns the index of the first 8-byte word at or
// after i holding '"' or '\\', or where fewer than 8 bytes are left (see
// skipPlainText).
func skipToQuoteOrBackslash(d []byte, i int) int {
	for ; i+8 <= len(d); i += 8 {
		x := binary.LittleEndian.Uint64(d[i:])
		if hasQuoteOrBackslash(x) {
			return i
		}
	}
	return i
}
