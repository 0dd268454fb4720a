package audit

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseQueryTime holds ParseQueryTime to RFC 3339 and the years 0000 to
// 9999 in UTC: an accepted bound reads back from its own RFC 3339 text as the
// same instant, and a refusal quotes what it was given.
func FuzzParseQueryTime(f *testing.F) {
	for _, s := range []string{"2026-01-02T15:04:05Z", "2026-01-02T15:04:05.123456789+05:30", "0000-01-01T00:30:00+01:00",
		"9999-12-31T23:59:59-23:59", "2026-13-01T00:00:00Z", "2026-01-02 15:04:05Z", "2026-01-02T15:04:05"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tm, err := ParseQueryTime(v)
		if err != nil {
			if !strings.Contains(err.Error(), "RFC 3339") && !strings.Contains(err.Error(), "years") {
				t.Fatalf("refusal of %q: %v says neither what form nor what range", v, err)
			}
			return
		}
		if y := tm.UTC().Year(); y < 0 || y > 9999 {
			t.Fatalf("%q accepted as %v, outside the years 0000 to 9999", v, tm)
		}
		back, err := ParseQueryTime(tm.UTC().Format(time.RFC3339Nano))
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%q reads as %v, whose RFC 3339 text reads back as %v, %v", v, tm, back, err)
		}
	})
}
