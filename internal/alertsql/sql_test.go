package alertsql

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

var (
	numbered = Dialect{
		Param:  func(n int) string { return "$" + strconv.Itoa(n) },
		Arrays: true,
		Time:   func(t time.Time) any { return t },
		Tags:   func(tags []string) any { return tags },
	}
	positional = Dialect{
		Param: func(int) string { return "?" },
		Time:  func(t time.Time) any { return t.UnixMicro() },
		Tags:  func(tags []string) any { return strings.Join(tags, ",") },
	}
)

func TestFilterQueries(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cursor := audit.AlertCursor(audit.Alert{ID: "alt_1", FirstSeen: since})
	f := audit.AlertFilter{
		Status: []audit.AlertStatus{audit.AlertActive, audit.AlertAcknowledged}, Type: []audit.AlertType{audit.AlertSystem},
		OrganizationID: "org-1", Since: since, Limit: 10, After: cursor,
	}
	for _, c := range []struct {
		name      string
		got       func() (string, []any)
		wantWhere string
		wantArgs  []any
	}{
		{"list, numbered arrays", func() (string, []any) { return numbered.list(f) },
			" WHERE status = ANY($1) AND type = ANY($2) AND organization_id = $3 AND first_seen >= $4 AND (first_seen, id) < ($5, $6) ORDER BY first_seen DESC, id DESC LIMIT $7",
			[]any{[]string{"active", "acknowledged"}, []string{"SYSTEM"}, "org-1", since, since, "alt_1", 11}},
		{"list, positional", func() (string, []any) { return positional.list(f) },
			" WHERE status IN (?, ?) AND type IN (?) AND organization_id = ? AND first_seen >= ? AND (first_seen, id) < (?, ?) ORDER BY first_seen DESC, id DESC LIMIT ?",
			[]any{"active", "acknowledged", "SYSTEM", "org-1", since.UnixMicro(), since.UnixMicro(), "alt_1", 11}},
		{"statistics ignore the cursor and the limit", func() (string, []any) { return positional.statistics(f) },
			" WHERE status IN (?, ?) AND type IN (?) AND organization_id = ? AND first_seen >= ? GROUP BY status, severity, type",
			[]any{"active", "acknowledged", "SYSTEM", "org-1", since.UnixMicro()}},
		{"no filter", func() (string, []any) { return numbered.statistics(audit.AlertFilter{}) },
			" GROUP BY status, severity, type", nil},
		{"open alerts of keys", func() (string, []any) { return positional.open([]string{"k1", "k2"}) },
			" WHERE dedup_key IN (?, ?) AND status IN ('active', 'acknowledged')", []any{"k1", "k2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sql, args := c.got()
			if _, where, _ := strings.Cut(sql, " FROM alerts"); where != c.wantWhere {
				t.Errorf("SQL after FROM alerts:\n got %q\nwant %q", where, c.wantWhere)
			}
			if !reflect.DeepEqual(args, c.wantArgs) {
				t.Errorf("args = %#v, want %#v", args, c.wantArgs)
			}
		})
	}
}

// Every statement has as many placeholders as arguments, and the row of an
// insert lists a value per column.
func TestStatementsMatchTheirArguments(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &audit.Alert{ID: "alt_1", Type: audit.AlertSystem, Severity: audit.SeverityHigh, Status: audit.AlertResolved,
		FirstSeen: at, LastSeen: at, UpdatedAt: at, ResolvedAt: &at, Tags: []string{"x"}, Metadata: []byte(`{"a":1}`)}
	for _, c := range []struct {
		name string
		sql  string
		args []any
	}{
		{"insert", positional.Insert(), positional.Values(a)},
		{"update", positional.Update(), positional.UpdateArgs(a)},
	} {
		if n := strings.Count(c.sql, "?"); n != len(c.args) {
			t.Errorf("%s: %d placeholders, %d arguments", c.name, n, len(c.args))
		}
	}
	if n := len(positional.Values(a)); n != len(strings.Split(Columns, ", ")) {
		t.Errorf("a row has %d values for %d columns", n, len(strings.Split(Columns, ", ")))
	}
	if got := numbered.Update(); !strings.HasSuffix(got, "WHERE id = $15") {
		t.Errorf("update = %q, want the id last, as $15", got)
	}
	args := positional.UpdateArgs(a)
	if args[len(args)-1] != "alt_1" || args[4] != `{"a":1}` || args[9] != nil || args[11] != at.UnixMicro() {
		t.Errorf("update args = %#v: want the id last, metadata as text, an absent instant as NULL, instants encoded", args)
	}
	if v := positional.Values(&audit.Alert{})[12]; v != nil {
		t.Errorf("empty metadata is %#v, want NULL", v)
	}
}

func TestRowFinish(t *testing.T) {
	local := time.FixedZone("x", 3600)
	at := time.Date(2026, 1, 1, 1, 0, 0, 0, local)
	var r Row
	dest := r.Dest(new(any), new(any), new(any), new(any), new(any), new(any))
	if len(dest) != len(strings.Split(Columns, ", ")) {
		t.Fatalf("%d destinations for %d columns", len(dest), len(strings.Split(Columns, ", ")))
	}
	*dest[2].(*string), *dest[3].(*string), *dest[7].(*string) = "SYSTEM", "HIGH", "acknowledged"
	r.Alert.FirstSeen, r.Alert.AcknowledgedAt = at, &at
	a := r.Finish()
	if a.Type != audit.AlertSystem || a.Severity != audit.SeverityHigh || a.Status != audit.AlertAcknowledged {
		t.Errorf("enums = %s %s %s", a.Type, a.Severity, a.Status)
	}
	if a.FirstSeen.Location() != time.UTC || a.AcknowledgedAt.Location() != time.UTC || a.ResolvedAt != nil {
		t.Errorf("instants %v %v %v, want UTC and nil kept", a.FirstSeen, a.AcknowledgedAt, a.ResolvedAt)
	}
	if a.Tags == nil || a.Metadata != nil {
		t.Errorf("tags %#v metadata %#v, want [] and nil", a.Tags, a.Metadata)
	}
}

func TestRaiseOpNamesTheCall(t *testing.T) {
	one := []audit.AlertCondition{{DedupKey: "k"}}
	if got := raiseOp(one); got != "raise alert k" {
		t.Errorf("raiseOp(one) = %q", got)
	}
	if got := raiseOp(append(one, one...)); got != "raise 2 alerts" {
		t.Errorf("raiseOp(two) = %q", got)
	}
}
