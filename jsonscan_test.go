package audit

import (
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
				end, depth, problem := walkString(data, 0)
				if end != len(s) || depth != 0 || problem != c.problem {
					t.Fatalf("walkString(%s) = %d, %d, %q; want %d, 0, %q", s, end, depth, problem, len(s), c.problem)
				}
				if err := checkJSON([]byte(s)); err != nil {
					t.Fatalf("checkJSON(%s) = %v", s, err)
				}
				for _, bad := range []string{"\x01", "\x1f", "\xff", `\x`} {
					b := s[:1+before] + bad + s[1+before:]
					if checkJSON([]byte(b)) == nil {
						t.Fatalf("checkJSON(%q) accepted it", b)
					}
				}
			}
		}
	}
}
