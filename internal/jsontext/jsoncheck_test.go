package jsontext

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// Check must agree with utf8.Valid + json.Valid on every input.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `{"a":1}`, ` {"a" : [1, -0.5e+3, true, false, null, "x\u00e9\n"]} `, `{"a":01}`, `{"a":1.}`,
		`{"a":-}`, `{"a":1e}`, `{"a":"\x"}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":tru}`, `[1,]`, `{"a":1,}`,
		`"s"`, `1 2`, ``, ` `, `{"a":"` + "\x01" + `"}`, `[[[[[]]]]]`, `{"a":{"b":{}}}`, "\xef\xbb\xbf{}", `{"é":"€𝄞"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := utf8.Valid(data) && json.Valid(data)
		err := Check(data)
		if (err == nil) != want {
			t.Fatalf("Check(%q) = %v, json.Valid and utf8.Valid say %v", data, err, want)
		}
		if err != nil && !utf8.Valid(data) && err != ErrNotUTF8 {
			t.Fatalf("Check(%q) = %v, want the UTF-8 error", data, err)
		}
	})
}
