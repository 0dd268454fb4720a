package jsontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// walkString and the checker step over words of 8 bytes: whatever offset a
// quote, an escape or a surrogate falls at within a word, the end and the
// problem found are the same.
func TestStringScanAtEveryWordOffset(t *testing.T) {
	cases := []struct{ body, problem string }{
		{``, ""},
		{`\"`, ""},
		{`\\`, ""},
		{`\\\"x\/`, ""},
		{`é✓😀`, ""},
		{`\u00e9`, ""},
		{`\u0000`, "NUL character"},
		{`\ud83d\ude00`, ""},
		{`\ud83d`, "lone UTF-16 surrogate"},
		{`\ude00`, "lone UTF-16 surrogate"},
		{`\ud83dx`, "lone UTF-16 surrogate"},
		{`\ud83d\n`, "lone UTF-16 surrogate"},
		{`\ud83d\ud83d\ude00`, "lone UTF-16 surrogate"},
	}
	for before := range 17 {
		for after := range 17 {
			for _, c := range cases {
				s := `"` + strings.Repeat("a", before) + c.body + strings.Repeat("b", after) + `"`
				data := []byte(s + `, "next": 1}`)
				end, problem := walkString(data, 0)
				if end != len(s) || problem != c.problem {
					t.Fatalf("walkString(%s) = %d, %q; want %d, %q", s, end, problem, len(s), c.problem)
				}
				if err := Check([]byte(s)); err != nil {
					t.Fatalf("Check(%s) = %v", s, err)
				}
				for _, bad := range []string{"\x01", "\x1f", "\xff", `\x`} {
					b := s[:1+before] + bad + s[1+before:]
					if Check([]byte(b)) == nil {
						t.Fatalf("Check(%q) accepted it", b)
					}
				}
			}
		}
	}
}

func TestSplitObject(t *testing.T) {
	data := ` { "a" : "x" , "b\u00e9":[1,{"c":null}], "n":-1.5e3,"nul":"a\u0000","` + `\ud800":1 } `
	members, err := SplitObject([]byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key, raw string
		depth    int
		problem  string
	}{
		{"a", `"x"`, 0, ""},
		{"bé", `[1,{"c":null}]`, 2, ""},
		{"n", `-1.5e3`, 0, ""},
		{"nul", `"a\u0000"`, 0, "NUL character"},
		{"\xed\xa0\x80", `1`, 0, "lone UTF-16 surrogate in key"},
	}
	if len(members) != len(want) {
		t.Fatalf("got %d members, want %d: %+v", len(members), len(want), members)
	}
	for i, w := range want {
		m := members[i]
		if m.Key != w.key || string(m.Raw) != w.raw || m.Depth != w.depth || m.Problem != w.problem {
			t.Errorf("member %d = %q %s depth %d problem %q; want %q %s %d %q", i, m.Key, m.Raw, m.Depth, m.Problem, w.key, w.raw, w.depth, w.problem)
		}
		if data[m.Start] != '"' || !strings.HasSuffix(data[:m.End], w.raw) {
			t.Errorf("member %d spans %q", i, data[m.Start:m.End])
		}
	}
	if s, err := members[0].StringValue(); s != "x" || err != nil {
		t.Errorf("StringValue = %q, %v", s, err)
	}
	if s, err := members[3].StringValue(); s != "a\x00" || err != nil {
		t.Errorf("StringValue = %q, %v", s, err)
	}
	// The same object held in a string splits the same way.
	fromString, err := SplitObjectString(data, nil)
	if err != nil || len(fromString) != len(members) || fromString[1].Key != "bé" || fromString[4].End != members[4].End {
		t.Errorf("SplitObjectString = %+v, %v", fromString, err)
	}
}

func TestSplitObjectRefuses(t *testing.T) {
	big := func(prefix string, n int, extra string) string {
		var b strings.Builder
		b.WriteString(prefix)
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(extra)
		return b.String()
	}
	tests := []struct {
		name, data string
		err        error  // for errors other than a duplicate
		path       string // for a duplicate
	}{
		{"not JSON", `{"a":}`, ErrNotJSON, ""},
		{"not UTF-8", "{\"a\":\"\xff\"}", ErrNotUTF8, ""},
		{"not UTF-8 in a nested key", "{\"a\":{\"\xed\xa0\x80\":1}}", ErrNotUTF8, ""},
		{"an array", `[{"a":1}]`, ErrNotObject, ""},
		{"a string", `"{}"`, ErrNotObject, ""},
		{"top level", `{"a":1,"b":2,"a":3}`, nil, "a"},
		{"top level, escaped", `{"a":1,"\u0061":2}`, nil, "a"},
		{"top level, many keys", big(`{`, 100, `"k7":0}`), nil, "k7"},
		{"nested object", `{"sessionContext":{"ipAddress":"not-an-ip<script>","ipAddress":"10.0.0.1"}}`, nil, "sessionContext.ipAddress"},
		{"nested, escaped", `{"d":{"é":1,"\u00e9":2}}`, nil, "d.é"},
		{"in an array", `{"items":[{"id":1},{"id":2,"id":3}]}`, nil, "items[1].id"},
		{"in nested arrays", `{"x":[[1],[{"k":{"a":1,"a":1}}]]}`, nil, "x[1][0].k.a"},
		{"nested, many keys", big(`{"d":{`, 40, `"k33":1}}`), nil, "d.k33"},
		{"nested, many keys, repeat among the first", big(`{"d":{`, 40, `"k2":1}}`), nil, "d.k2"},
		{"empty key", `{"d":{"":1,"":2}}`, nil, "d."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members, err := SplitObject([]byte(tt.data), nil)
			if err == nil {
				t.Fatalf("accepted: %+v", members)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			var dup *DuplicateKeyError
			if !errors.As(err, &dup) || dup.Path != tt.path {
				t.Fatalf("err = %v, want a duplicate key at %q", err, tt.path)
			}
		})
	}
}

func TestSplitObjectAcceptsDistinctKeys(t *testing.T) {
	var many strings.Builder
	many.WriteString(`{"d":{`)
	for i := range 200 {
		fmt.Fprintf(&many, `"k%d":{"k%d":1},`, i, i)
	}
	many.WriteString(`"last":1}}`)
	for _, data := range []string{
		`{}`, `{"a":{}}`,
		`{"a":{"x":1},"b":{"x":2}}`,            // the same key in sibling objects
		`{"a":[{"id":1},{"id":2}],"id":3}`,     // and in array elements, and at another depth
		`{"a":{"a":{"a":1}}}`,                  // and nested in itself
		`{"a":{"\u00e9":1,"e\u0301":2,"É":3}}`, // keys are compared as code points, not normalised
		`{"a":{"\ud83d\ude00":1,"\ud83d":2}}`,  // a pair is not its high half
		`{"a":{"A":1,"a":2}}`,                  // case matters
		`{"a":"{\"k\":1,\"k\":2}"}`,            // a string holding JSON is a string
		many.String(),
	} {
		if _, err := SplitObject([]byte(data), nil); err != nil {
			t.Errorf("SplitObject(%.60s) = %v", data, err)
		}
	}
}

func TestMemberMembers(t *testing.T) {
	members, err := SplitObject([]byte(`{"s":{"id":"a","ip": "b\u00e9" },"n":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	inner := members[0].Members(nil)
	if len(inner) != 2 || inner[0].Key != "id" || inner[1].Key != "ip" || string(members[0].Raw[inner[1].Start:inner[1].End]) != `"ip": "b\u00e9"` {
		t.Fatalf("Members = %+v", inner)
	}
	if s, _ := inner[1].StringValue(); s != "bé" {
		t.Errorf("StringValue = %q", s)
	}
	if got := members[1].Members(nil); got != nil {
		t.Errorf("Members of a number = %+v", got)
	}
}

// hasDuplicateKey is a reference for SplitObject's duplicate check, built
// on encoding/json's tokenizer.
func hasDuplicateKey(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reference decoder: %v", err)
		}
		dup := false
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					t.Fatalf("reference decoder: %v", err)
				}
				dup = dup || seen[k.(string)]
				seen[k.(string)] = true
				dup = walk() || dup
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				dup = walk() || dup
			}
			_, _ = dec.Token()
		}
		return dup
	}
	return walk()
}

// decodeAny decodes data with encoding/json, numbers kept as their text.
func decodeAny(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	return v, dec.Decode(&v)
}

// FuzzSplitObject holds SplitObject to encoding/json: it accepts exactly the
// valid objects without a repeated key, and its members are the object's.
func FuzzSplitObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"b":1},{"b":1,"c":[{"d":1,"d":2}]}]}`,
		`{"a":{"x":1},"b":{"x":2}}`, `{"a":"\u0000","b":"\ud800"}`, `{"\u0061":1,"a":2}`, ` { "a" : [ 1 , 2 ] } `,
		`[1]`, `{"a":}`, `{"e":"é","f":{"é":{"é":[]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		members, err := SplitObject(data, nil)
		if Check(data) != nil {
			if err == nil {
				t.Fatalf("SplitObject(%q) accepted what Check refuses", data)
			}
			return
		}
		v, err2 := decodeAny(data)
		if err2 != nil {
			t.Fatalf("Check passed %q, encoding/json refuses it", data)
		}
		obj, isObject := v.(map[string]any)
		if !isObject {
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("SplitObject(%q) = %v, want ErrNotObject", data, err)
			}
			return
		}
		// encoding/json reads a lone surrogate as U+FFFD, which makes keys
		// equal that are not: the reference cannot judge those.
		if bytes.Contains(bytes.ToLower(data), []byte(`\ud`)) {
			return
		}
		var dup *DuplicateKeyError
		if want := hasDuplicateKey(t, data); want != errors.As(err, &dup) {
			t.Fatalf("SplitObject(%q) = %v; encoding/json finds a repeated key: %v", data, err, want)
		}
		if err != nil {
			return
		}
		if len(members) != len(obj) {
			t.Fatalf("SplitObject(%q) = %d members, encoding/json %d", data, len(members), len(obj))
		}
		for _, m := range members {
			val, err := decodeAny(m.Raw)
			if err != nil {
				t.Fatalf("member %q of %q: raw %q: %v", m.Key, data, m.Raw, err)
			}
			if want, ok := obj[m.Key]; !ok || fmt.Sprint(want) != fmt.Sprint(val) {
				t.Fatalf("member %q of %q = %v, encoding/json %v", m.Key, data, val, want)
			}
			if !bytes.HasSuffix(data[:m.End], m.Raw) || data[m.Start] != '"' {
				t.Fatalf("member %q of %q spans %q", m.Key, data, data[m.Start:m.End])
			}
		}
	})
}
