package jsontext

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"
)

// ErrNotObject is returned by SplitObject for valid JSON that is not an object.
var ErrNotObject = errors.New("payload is not a JSON object")

// DuplicateKeyError reports an object that holds the same key twice. Two
// parsers can disagree on which of the values wins (Go's encoding/json and
// JavaScript keep the last, others the first), so a value could reach a
// reader without ever being validated.
type DuplicateKeyError struct {
	// Path names the repeated key from the outermost object, with a dot
	// before each key and [i] for each array index: status,
	// sessionContext.ipAddress, items[2].id.
	Path string
}

func (e *DuplicateKeyError) Error() string { return fmt.Sprintf("duplicate key %q", e.Path) }

// Member is one "key": value pair of an object, its value kept as raw JSON.
type Member struct {
	Key string // decoded
	Raw []byte // the value's exact bytes
	// Start is the offset of the key's opening quote and End the offset just
	// past the value, in the text the object was split from.
	Start, End int
	// Depth is how many objects and arrays the value nests (a scalar is 0, {} is 1).
	Depth int
	// Problem names a string in the value that no store can hold ("NUL
	// character", "lone UTF-16 surrogate"; with " in key" appended when only
	// the member's own key has it), or is "".
	Problem string
	// text is Raw as a substring of one copy of the object's text, so that
	// string values without escapes need no allocation of their own.
	text string
}

// SplitObject splits the JSON object data into its members in source order,
// without decoding the values. It refuses what Check refuses (with Check's
// errors), a value that is not an object (ErrNotObject) and an object that
// repeats a key at any depth (*DuplicateKeyError).
// Members are appended to dst[:0], so callers can reuse its memory; their
// strings share one copy of data.
func SplitObject(data []byte, dst []Member) ([]Member, error) {
	return splitObject(data, string(data), dst)
}

// SplitObjectString is SplitObject for an object held in a string, without
// copying it: the members' Raw share s's memory and must not be modified.
func SplitObjectString(s string, dst []Member) ([]Member, error) {
	// The scanners only read data, so viewing the immutable string's bytes is safe.
	return splitObject(unsafe.Slice(unsafe.StringData(s), len(s)), s, dst)
}

// splitObject is SplitObject given the same bytes both ways: data to scan,
// text to take substrings of.
func splitObject(data []byte, text string, dst []Member) ([]Member, error) {
	if err := Check(data); err != nil {
		return nil, err
	}
	i := SkipSpace(data, 0)
	if data[i] != '{' {
		return nil, ErrNotObject
	}
	return splitMembers(data, text, i, dst[:0])
}

// Members splits the member's value, an object, into its members (Start and
// End are offsets into Raw); it returns nil when the value is not an object.
// The value was checked when its enclosing object was split.
func (m *Member) Members(dst []Member) []Member {
	if len(m.Raw) == 0 || m.Raw[0] != '{' {
		return nil
	}
	members, err := splitMembers(m.Raw, m.text, 0, dst[:0])
	if err != nil { // cannot happen: SplitObject refused the whole object
		return nil
	}
	return members
}

// StringValue decodes the member's value, a JSON string literal.
func (m *Member) StringValue() (string, error) { return unquoteText(m.text, m.Raw) }

// maxScannedKeys is how many keys of one object are compared pairwise in
// search of a repeat; beyond it a map is faster.
const maxScannedKeys = 64

// splitMembers appends the members of the object at data[i] (valid JSON) to
// members.
func splitMembers(data []byte, text string, i int, members []Member) ([]Member, error) {
	w := walker{data: data, text: text}
	var seen map[string]struct{} // once the object has many keys
	i = SkipSpace(data, i+1)
	if data[i] == '}' {
		return members, nil
	}
	for {
		keyEnd, keyProblem := walkString(data, i)
		key, err := w.key(i, keyEnd)
		if err != nil {
			return nil, fmt.Errorf("key at byte %d: %w", i, err)
		}
		if repeatsKey(members, &seen, key) {
			return nil, &DuplicateKeyError{Path: key}
		}
		start := SkipSpace(data, SkipSpace(data, keyEnd)+1) // past ':'
		w.problem = ""
		end, depth := w.value(start)
		if w.dup != nil {
			return nil, w.duplicate(key)
		}
		problem := w.problem
		if problem == "" && keyProblem != "" {
			problem = keyProblem + " in key"
		}
		members = append(members, Member{Key: key, Raw: data[start:end], text: text[start:end],
			Start: i, End: end, Depth: depth, Problem: problem})
		i = SkipSpace(data, end)
		if data[i] == '}' {
			return members, nil
		}
		i = SkipSpace(data, i+1) // past ','
	}
}

// repeatsKey reports whether key is the key of one of members, comparing
// pairwise while there are few and through *seen (built on first need) after.
func repeatsKey(members []Member, seen *map[string]struct{}, key string) bool {
	if len(members) < maxScannedKeys {
		for j := range members {
			if members[j].Key == key {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(members))
		for j := range members {
			(*seen)[members[j].Key] = struct{}{}
		}
	}
	if _, ok := (*seen)[key]; ok {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

// unquoteText decodes a string literal given both as a string and as bytes:
// without escapes the result is a substring of text and allocates nothing.
func unquoteText(text string, lit []byte) (string, error) {
	if len(text) >= 2 && text[0] == '"' && text[len(text)-1] == '"' && strings.IndexByte(text, '\\') < 0 {
		return text[1 : len(text)-1], nil
	}
	return Unquote(lit)
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace, or len(data).
func SkipSpace(data []byte, i int) int {
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

// walker scans values in JSON that Check passed, finding where each ends,
// how deep it nests, the first string problem in it and the first key an
// object repeats.
type walker struct {
	data    []byte
	text    string // data as a string, for keys without escapes
	problem string // the first string problem met, or ""
	// dup, once an object repeats a key, is the path to it from the value
	// being walked, innermost step first; the walk then stops.
	dup []pathStep
}

// pathStep is one step of a path into a value: a key, or an array index.
type pathStep struct {
	key   string
	index int // < 0 for a key
}

// duplicate is the error for w.dup found in the value of the member top.
func (w *walker) duplicate(top string) *DuplicateKeyError {
	var b strings.Builder
	b.WriteString(top)
	for k := len(w.dup) - 1; k >= 0; k-- {
		if s := w.dup[k]; s.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		} else {
			b.WriteByte('.')
			b.WriteString(s.key)
		}
	}
	return &DuplicateKeyError{Path: b.String()}
}

func (w *walker) note(problem string) {
	if w.problem == "" {
		w.problem = problem
	}
}

// key decodes the key literal data[start:end].
func (w *walker) key(start, end int) (string, error) {
	return unquoteText(w.text[start:end], w.data[start:end])
}

// value walks the value at data[i] and returns where it ends and how deep it nests.
func (w *walker) value(i int) (end, depth int) {
	switch w.data[i] {
	case '"':
		end, problem := walkString(w.data, i)
		if problem != "" {
			w.note(problem)
		}
		return end, 0
	case '{':
		return w.object(i)
	case '[':
		return w.array(i)
	default: // number, true, false, null
		for d := w.data; i < len(d); i++ {
			switch d[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i, 0
			}
		}
		return i, 0
	}
}

func (w *walker) object(i int) (end, depth int) {
	var keys keySet
	maxChild := 0
	i = SkipSpace(w.data, i+1)
	if w.data[i] == '}' {
		return i + 1, 1
	}
	for {
		keyEnd, problem := walkString(w.data, i)
		if problem != "" {
			w.note(problem)
		}
		key, err := w.key(i, keyEnd)
		if err != nil { // cannot happen after Check; an unreadable key repeats none
			key = ""
		}
		if keys.add(key) {
			w.dup = append(w.dup, pathStep{key: key, index: -1})
			return keyEnd, 0
		}
		end, d := w.value(SkipSpace(w.data, SkipSpace(w.data, keyEnd)+1)) // past ':'
		if w.dup != nil {
			w.dup = append(w.dup, pathStep{key: key, index: -1})
			return end, 0
		}
		maxChild = max(maxChild, d)
		i = SkipSpace(w.data, end)
		if w.data[i] == '}' {
			return i + 1, maxChild + 1
		}
		i = SkipSpace(w.data, i+1) // past ','
	}
}

func (w *walker) array(i int) (end, depth int) {
	maxChild := 0
	i = SkipSpace(w.data, i+1)
	if w.data[i] == ']' {
		return i + 1, 1
	}
	for n := 0; ; n++ {
		end, d := w.value(i)
		if w.dup != nil {
			w.dup = append(w.dup, pathStep{index: n})
			return end, 0
		}
		maxChild = max(maxChild, d)
		i = SkipSpace(w.data, end)
		if w.data[i] == ']' {
			return i + 1, maxChild + 1
		}
		i = SkipSpace(w.data, i+1) // past ','
	}
}

// keySet holds the keys of one nested object, to find a repeat. Most
// objects are small: their keys are compared pairwise in place, and only an
// object with more keys than that costs a map.
type keySet struct {
	small [16]string
	n     int
	large map[string]struct{}
}

// add adds key and reports whether it was there already.
func (k *keySet) add(key string) (repeated bool) {
	if k.large == nil {
		for _, s := range k.small[:k.n] {
			if s == key {
				return true
			}
		}
		if k.n < len(k.small) {
			k.small[k.n] = key
			k.n++
			return false
		}
		k.large = make(map[string]struct{}, 2*len(k.small))
		for _, s := range k.small {
			k.large[s] = struct{}{}
		}
	}
	if _, ok := k.large[key]; ok {
		return true
	}
	k.large[key] = struct{}{}
	return false
}

// walkString scans the string literal at data[i] and returns where it ends
// and a problem no store can hold found in it (a NUL character or a lone
// UTF-16 surrogate, neither of which PostgreSQL's text stores), or "".
func walkString(data []byte, i int) (end int, problem string) {
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
			return i + 1, problem
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
