package audit

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeAlertCursor holds DecodeAlertCursor to the cursors AlertCursor
// makes: what it accepts is exactly the cursor of the alert it decodes to (one
// text per position, so no two cursors name the same page), with an id a store
// can compare (UTF-8, no NUL) and a time a store can hold; everything else is
// CodeInvalid.
func FuzzDecodeAlertCursor(f *testing.F) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for _, a := range []Alert{{ID: NewAlertID(at), FirstSeen: at}, {ID: "alt_1", FirstSeen: time.Unix(0, 0)},
		{ID: "x|y", FirstSeen: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)}} {
		f.Add(AlertCursor(a))
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		firstSeen, id, err := DecodeAlertCursor(cursor)
		if err != nil {
			if ErrorCode(err) != CodeInvalid || !strings.Contains(err.Error(), "cursor") {
				t.Fatalf("refusal %v is not CodeInvalid naming the cursor", err)
			}
			return
		}
		if again := AlertCursor(Alert{ID: id, FirstSeen: firstSeen}); again != cursor {
			t.Fatalf("cursor %q decodes to (%v, %q), whose cursor is %q", cursor, firstSeen, id, again)
		}
		if id == "" || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
			t.Fatalf("cursor %q decodes to id %q, which no store can compare", cursor, id)
		}
		if y := firstSeen.Year(); y < minAlertCursorYear || y > maxAlertCursorYear {
			t.Fatalf("cursor %q decodes to %v, outside the years a store holds", cursor, firstSeen)
		}
	})
}
