package audit

import (
	"encoding/json"
	"testing"
	"time"
)

func TestNewAlertIDSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := NewAlertID(t0), NewAlertID(t0.Add(time.Millisecond))
	if len(a) != len("alt_")+12+16 || a >= b || a == NewAlertID(t0) {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestAlertCursorRoundTrip(t *testing.T) {
	a := Alert{ID: "alt_x|y", FirstSeen: time.Date(2026, 1, 1, 0, 0, 0, 123456000, time.UTC)}
	at, id, err := DecodeAlertCursor(AlertCursor(a))
	if err != nil || id != a.ID || !at.Equal(a.FirstSeen) {
		t.Errorf("decoded %s %q %v", at, id, err)
	}
	for _, bad := range []string{"", "!!", "bm8tc2VwYXJhdG9y", "eHx5"} {
		if _, _, err := DecodeAlertCursor(bad); ErrorCode(err) != CodeInvalid {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestAlertConditionNormalize(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.FixedZone("x", 3600))
	c, err := AlertCondition{Type: AlertSystem, Severity: SeverityLow, DedupKey: "k", Title: "t"}.Normalize(now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ObservedAt.Equal(now.Truncate(time.Microsecond)) || c.ObservedAt.Location() != time.UTC || c.Tags == nil {
		t.Errorf("normalized: %+v", c)
	}
}

func TestAlertFilterNormalizeLimits(t *testing.T) {
	for in, want := range map[int]int{0: AlertListDefault, 5: 5, 5000: AlertListMax} {
		f, err := AlertFilter{Limit: in}.Normalize()
		if err != nil || f.Limit != want {
			t.Errorf("limit %d → %d, %v; want %d", in, f.Limit, err, want)
		}
	}
	if _, err := (AlertFilter{Limit: -1}).Normalize(); ErrorCode(err) != CodeInvalid {
		t.Errorf("negative limit: %v", err)
	}
}

func TestNormalizeMetadataMustBeAnObject(t *testing.T) {
	base := AlertCondition{Type: AlertSecurity, Severity: SeverityLow, DedupKey: "k", Title: "t"}
	for meta, ok := range map[string]bool{
		`{"a":1}`: true, " \n{}": true, `null`: false, `[1]`: false, `"x"`: false, `{"a":1`: false, `{} {}`: false,
	} {
		c := base
		c.Metadata = json.RawMessage(meta)
		_, err := c.Normalize(time.Now())
		if (err == nil) != ok {
			t.Errorf("metadata %q: error %v, want ok=%v", meta, err, ok)
		}
		if err != nil && ErrorCode(err) != CodeInvalid {
			t.Errorf("metadata %q: code %q, want %q", meta, ErrorCode(err), CodeInvalid)
		}
	}
}
