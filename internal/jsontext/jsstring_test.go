package jsontext

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Expected outputs are JavaScript's JSON.stringify results.
func TestAppendJSString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`quote " backslash \`, `"quote \" backslash \\"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"<>&", `"<>&"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"é😀", `"é😀"`},
		{"/", `"/"`},
		{"\xed\xa0\x80", `"\ud800"`},     // lone high surrogate (WTF-8)
		{"a\xed\xbf\xbfb", `"a\udfffb"`}, // lone low surrogate
		{"\xff", "\"\uFFFD\""},           // not UTF-8: what Node's decoder would have made of it
	}
	for _, tt := range tests {
		if got := string(AppendJSString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendJSString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestUnquoteJSON(t *testing.T) {
	tests := []struct{ lit, want string }{
		{`"plain"`, "plain"},
		{`"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t"},
		{`"\u00e9\u0041"`, "éA"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\ud800"`, "\xed\xa0\x80"},
		{`"\ud800\u0041"`, "\xed\xa0\x80A"},
		{`"\udc00\ud800"`, "\xed\xb0\x80\xed\xa0\x80"},
	}
	for _, tt := range tests {
		got, err := Unquote([]byte(tt.lit))
		if err != nil || got != tt.want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", tt.lit, got, err, tt.want)
		}
		// Rendering what was decoded gives back a JavaScript-equivalent literal.
		if back, _ := Unquote(AppendJSString(nil, got)); back != got {
			t.Errorf("round trip of %s: %q", tt.lit, back)
		}
	}
	for _, bad := range []string{`"abc`, `"\x"`, `"\u12"`, `x`} {
		if _, err := Unquote([]byte(bad)); err == nil {
			t.Errorf("Unquote(%s) accepted", bad)
		}
	}
}

// Expected outputs are JavaScript's String(n).
func TestFormatJSNumber(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-1.5, "-1.5"}, {123.456, "123.456"}, {1e21, "1e+21"},
		{1e20, "100000000000000000000"}, {123456789012345680000, "123456789012345680000"},
		{0.000001, "0.000001"}, {0.0000001, "1e-7"}, {1.5e-7, "1.5e-7"}, {2.5e25, "2.5e+25"},
		{0.30000000000000004, "0.30000000000000004"}, {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
	}
	for _, tt := range tests {
		if got := FormatJSNumber(tt.in); got != tt.want {
			t.Errorf("FormatJSNumber(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// encodingJSON renders s with Go's encoder, HTML escaping off.
func encodingJSON(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// FuzzAppendJSString checks the encoder against encoding/json where the two must
// agree (valid UTF-8 without U+2028/U+2029, which Go always escapes and JavaScript
// never does), and checks that decoding our output gives the input back.
func FuzzAppendJSString(f *testing.F) {
	for _, seed := range []string{"", "plain", "\"\\/\b\f\n\r\t", "\x00\x1f\x7f", "<>&", "é😀", "\u2028", "\xff\xfe", "\xed\xa0\x80"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ours := string(AppendJSString(nil, s))
		if utf8.ValidString(s) && !strings.ContainsAny(s, "\u2028\u2029") {
			if want := encodingJSON(s); ours != want {
				t.Fatalf("AppendJSString(%q) = %s, encoding/json = %s", s, ours, want)
			}
		}
		if !json.Valid([]byte(ours)) {
			t.Fatalf("AppendJSString(%q) = %s is not valid JSON", s, ours)
		}
		back, err := Unquote([]byte(ours))
		if err != nil {
			t.Fatalf("Unquote(%s): %v", ours, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	})
}
