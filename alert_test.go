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

func TestAlertBatchDecidesAsOneByOne(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cond := func(key string, at time.Duration) AlertCondition {
		c, err := AlertCondition{Type: AlertSecurity, Severity: SeverityLow, DedupKey: key, Title: "t",
			DedupWindow: time.Minute, ObservedAt: t0.Add(at), Tags: []string{key}}.Normalize(t0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	stored := NewAlertFrom("alt_stored", cond("a", 0), t0) // open in the store before the batch
	b := NewAlertBatch([]Alert{stored})
	type step struct {
		c           AlertCondition
		created     bool
		occurrences int64
	}
	steps := []step{
		{cond("a", 30*time.Second), false, 2}, // within the window: updates the stored alert
		{cond("b", 0), true, 1},               // a new key opens an alert
		{cond("b", 10*time.Second), false, 2}, // a repeat of the alert the batch opened
		{cond("a", 5*time.Minute), true, 1},   // after the window: supersedes and opens
	}
	var raised []AlertRaise
	for i, s := range steps {
		r, err := b.Raise(s.c, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if r.Created != s.created || r.Alert.Occurrences != s.occurrences {
			t.Errorf("step %d: created %v with %d occurrences, want %v with %d", i, r.Created, r.Alert.Occurrences, s.created, s.occurrences)
		}
		raised = append(raised, r)
	}
	if raised[0].Alert.ID != "alt_stored" || raised[0].Alert.Status != AlertActive {
		t.Errorf("the first raise reports %s %s, want the stored alert, active as it was then", raised[0].Alert.ID, raised[0].Alert.Status)
	}
	updated, created := b.Changes()
	if len(updated) != 1 || updated[0].ID != "alt_stored" || updated[0].Status != AlertResolved || updated[0].StatusNote != SupersededNote {
		t.Fatalf("updated = %+v, want the stored alert, resolved as superseded", updated)
	}
	if len(created) != 2 || created[0].DedupKey != "b" || created[1].DedupKey != "a" || created[1].Status != AlertActive {
		t.Fatalf("created = %+v, want b then the new a, open", created)
	}
	if created[0].Occurrences != 2 || raised[1].Alert.Occurrences != 1 {
		t.Errorf("b holds %d occurrences and its first raise reports %d; want 2 and 1 (a raise reports a snapshot)",
			created[0].Occurrences, raised[1].Alert.Occurrences)
	}
}

func TestAlertDedupKeysSortedAndDistinct(t *testing.T) {
	got := AlertDedupKeys([]AlertCondition{{DedupKey: "b"}, {DedupKey: "a"}, {DedupKey: "b"}})
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("AlertDedupKeys = %v, want [a b]", got)
	}
}

func TestAlertPage(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	alerts := []Alert{{ID: "c", FirstSeen: t0.Add(2)}, {ID: "b", FirstSeen: t0.Add(1)}, {ID: "a", FirstSeen: t0}}
	for _, c := range []struct {
		read, limit int
		wantLen     int
		wantNext    string
	}{
		{read: 3, limit: 2, wantLen: 2, wantNext: AlertCursor(alerts[1])},
		{read: 2, limit: 2, wantLen: 2},
		{read: 0, limit: 2},
	} {
		page, next := AlertPage(alerts[:c.read], c.limit)
		if len(page) != c.wantLen || next != c.wantNext {
			t.Errorf("%d read, limit %d: page of %d, next %q; want %d, %q", c.read, c.limit, len(page), next, c.wantLen, c.wantNext)
		}
	}
}
