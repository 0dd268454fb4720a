package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// deliveryLog is what a store offers beyond audit.DeliveryRecorder to read the
// recorded deliveries back; both stores implement it.
type deliveryLog interface {
	audit.DeliveryRecorder
	ListAlertDeliveries(ctx context.Context, alertID string) ([]audit.AlertDelivery, error)
}

// RunAlerts runs the conformance tests of audit.AlertStore as subtests. open
// must return a fresh, empty store for each call and close it in t.Cleanup.
func RunAlerts(t *testing.T, open func(t *testing.T) audit.AlertStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s audit.AlertStore)
	}{
		{"RaiseRoundTrip", testAlertRoundTrip},
		{"RaiseInvalid", testAlertRaiseInvalid},
		{"DedupWithinWindow", testAlertDedupWithinWindow},
		{"NewAlertAfterWindow", testAlertAfterWindow},
		{"ZeroWindowHasNoTimeLimit", testAlertZeroWindow},
		{"OutOfOrderObservation", testAlertOutOfOrder},
		{"SeverityEscalation", testAlertEscalation},
		{"FoldedOccurrences", testAlertFoldedOccurrences},
		{"ConcurrentRaises", testAlertConcurrent},
		{"Transitions", testAlertTransitions},
		{"IllegalTransitions", testAlertIllegalTransitions},
		{"ClosedAlertIsNotReopened", testAlertClosedNotReopened},
		{"Pagination", testAlertPagination},
		{"Filters", testAlertFilters},
		{"Statistics", testAlertStatistics},
		{"Deliveries", testAlertDeliveries},
		{"BatchEqualsOneByOne", testAlertBatchEqualsOneByOne},
		{"ConcurrentBatches", testAlertConcurrentBatches},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var alertT0 = time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

func cond(key string, at time.Time) audit.AlertCondition {
	return audit.AlertCondition{
		OrganizationID: "org-1",
		Type:           audit.AlertSecurity,
		Severity:       audit.SeverityHigh,
		DedupKey:       key,
		DedupWindow:    5 * time.Minute,
		Title:          "Suspicious Pattern Detected: FAILED_AUTH",
		Description:    "5 failed authentication attempts",
		Source:         "pattern-detector",
		Metadata:       json.RawMessage(`{"attemptCount":5}`),
		Tags:           []string{"suspicious-pattern", "failed-auth"},
		CorrelationID:  "corr-1",
		ObservedAt:     at,
	}
}

func raise(t *testing.T, s audit.AlertStore, c audit.AlertCondition) audit.AlertRaise {
	t.Helper()
	r, err := s.RaiseAlert(ctxFor(t), c)
	if err != nil {
		t.Fatalf("RaiseAlert(%s): %v", c.DedupKey, err)
	}
	return r
}

func getAlert(t *testing.T, s audit.AlertStore, id string) audit.Alert {
	t.Helper()
	a, err := s.GetAlert(ctxFor(t), id)
	if err != nil {
		t.Fatalf("GetAlert(%s): %v", id, err)
	}
	return a
}

func wantCode(t *testing.T, what string, err error, code audit.Code) {
	t.Helper()
	if got := audit.ErrorCode(err); got != code {
		t.Errorf("%s: error %v has code %q, want %q", what, err, got, code)
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func testAlertRoundTrip(t *testing.T, s audit.AlertStore) {
	c := cond("FAILED_AUTH:principal:u-42", alertT0)
	r := raise(t, s, c)
	if !r.Created || r.Alert.ID == "" {
		t.Fatalf("first raise: %+v", r)
	}
	got := getAlert(t, s, r.Alert.ID)
	a := got
	switch {
	case a.OrganizationID != c.OrganizationID, a.Type != c.Type, a.Severity != c.Severity,
		a.Title != c.Title, a.Description != c.Description, a.Source != c.Source,
		a.DedupKey != c.DedupKey, a.CorrelationID != c.CorrelationID:
		t.Errorf("fields differ: %+v", a)
	case a.Status != audit.AlertActive, a.Occurrences != 1:
		t.Errorf("status %s occurrences %d", a.Status, a.Occurrences)
	case !a.FirstSeen.Equal(alertT0), !a.LastSeen.Equal(alertT0):
		t.Errorf("first/last seen %s %s, want %s", a.FirstSeen, a.LastSeen, alertT0)
	case !slices.Equal(a.Tags, c.Tags):
		t.Errorf("tags %v", a.Tags)
	case !sameJSON(a.Metadata, c.Metadata):
		t.Errorf("metadata %s", a.Metadata)
	case a.AcknowledgedAt != nil || a.ResolvedAt != nil || a.AcknowledgedBy != "" || a.ResolvedBy != "":
		t.Errorf("lifecycle fields set on a new alert: %+v", a)
	case a.UpdatedAt.IsZero():
		t.Error("updatedAt not set")
	}
	if !r.Alert.FirstSeen.Equal(got.FirstSeen) || r.Alert.ID != got.ID {
		t.Errorf("raise returned %+v, stored %+v", r.Alert, got)
	}

	// No metadata and no tags read back as nil metadata and an empty list.
	bare := cond("bare", alertT0)
	bare.Metadata, bare.Tags, bare.OrganizationID = nil, nil, ""
	b := getAlert(t, s, raise(t, s, bare).Alert.ID)
	if b.Metadata != nil || b.Tags == nil || len(b.Tags) != 0 || b.OrganizationID != "" {
		t.Errorf("bare alert: metadata %q tags %#v org %q", b.Metadata, b.Tags, b.OrganizationID)
	}

	_, err := s.GetAlert(ctxFor(t), "alt_nonexistent")
	wantCode(t, "GetAlert unknown", err, audit.CodeNotFound)
}

func testAlertRaiseInvalid(t *testing.T, s audit.AlertStore) {
	for name, mutate := range map[string]func(*audit.AlertCondition){
		"type":     func(c *audit.AlertCondition) { c.Type = "METRICS" },
		"severity": func(c *audit.AlertCondition) { c.Severity = "INFO" },
		"key":      func(c *audit.AlertCondition) { c.DedupKey = " " },
		"title":    func(c *audit.AlertCondition) { c.Title = "" },
		"window":   func(c *audit.AlertCondition) { c.DedupWindow = -time.Second },
		"metadata": func(c *audit.AlertCondition) { c.Metadata = json.RawMessage(`[1]`) },
	} {
		c := cond("k", alertT0)
		mutate(&c)
		_, err := s.RaiseAlert(ctxFor(t), c)
		wantCode(t, name, err, audit.CodeInvalid)
	}
	_, _, err := s.ListAlerts(ctxFor(t), audit.AlertFilter{After: "not a cursor"})
	wantCode(t, "bad cursor", err, audit.CodeInvalid)
	_, _, err = s.ListAlerts(ctxFor(t), audit.AlertFilter{Status: []audit.AlertStatus{"open"}})
	wantCode(t, "bad status filter", err, audit.CodeInvalid)
}

func testAlertDedupWithinWindow(t *testing.T, s audit.AlertStore) {
	first := raise(t, s, cond("k", alertT0))
	c := cond("k", alertT0.Add(4*time.Minute))
	c.Description, c.Metadata = "7 failed authentication attempts", json.RawMessage(`{"attemptCount":7}`)
	c.Tags = []string{"failed-auth", "repeat"}
	second := raise(t, s, c)
	if second.Created || second.Alert.ID != first.Alert.ID {
		t.Fatalf("repeat within window created a new alert: %+v", second)
	}
	// The window counts from the last sighting, not the first.
	c3 := cond("k", alertT0.Add(8*time.Minute))
	c3.Description, c3.Metadata = "9 failed authentication attempts", json.RawMessage(`{"attemptCount":9}`)
	third := raise(t, s, c3)
	if third.Created {
		t.Fatal("repeat within the window of the last sighting created a new alert")
	}
	a := getAlert(t, s, first.Alert.ID)
	if a.Occurrences != 3 || !a.LastSeen.Equal(alertT0.Add(8*time.Minute)) || !a.FirstSeen.Equal(alertT0) {
		t.Errorf("occurrences %d, first %s, last %s", a.Occurrences, a.FirstSeen, a.LastSeen)
	}
	if a.Description != c3.Description || !sameJSON(a.Metadata, c3.Metadata) {
		t.Errorf("latest evidence not kept: %q %s", a.Description, a.Metadata)
	}
	if !slices.Equal(a.Tags, []string{"suspicious-pattern", "failed-auth", "repeat"}) {
		t.Errorf("tags %v", a.Tags)
	}
	if third.Alert.Occurrences != 3 {
		t.Errorf("raise returned occurrences %d", third.Alert.Occurrences)
	}
}

func testAlertAfterWindow(t *testing.T, s audit.AlertStore) {
	first := raise(t, s, cond("k", alertT0))
	second := raise(t, s, cond("k", alertT0.Add(5*time.Minute+time.Microsecond)))
	if !second.Created || second.Alert.ID == first.Alert.ID {
		t.Fatalf("repeat after the window updated the old alert: %+v", second)
	}
	old := getAlert(t, s, first.Alert.ID)
	if old.Status != audit.AlertResolved || old.StatusNote != audit.SupersededNote ||
		old.ResolvedBy != audit.SystemActor || old.ResolvedAt == nil {
		t.Errorf("old alert not superseded: %+v", old)
	}
	if n := getAlert(t, s, second.Alert.ID); n.Status != audit.AlertActive || n.Occurrences != 1 {
		t.Errorf("new alert: %+v", n)
	}
	// Exactly at the window's edge still counts as a repeat.
	edge := raise(t, s, cond("k", alertT0.Add(10*time.Minute+time.Microsecond)))
	if edge.Created {
		t.Error("repeat exactly one window after the last sighting created a new alert")
	}
}

func testAlertZeroWindow(t *testing.T, s audit.AlertStore) {
	c := cond("k", alertT0)
	c.DedupWindow = 0
	first := raise(t, s, c)
	c.ObservedAt = alertT0.Add(30 * 24 * time.Hour)
	if r := raise(t, s, c); r.Created || r.Alert.ID != first.Alert.ID {
		t.Errorf("zero window: repeat a month later opened a new alert")
	}
}

func testAlertOutOfOrder(t *testing.T, s audit.AlertStore) {
	first := raise(t, s, cond("k", alertT0.Add(time.Minute)))
	raise(t, s, cond("k", alertT0))
	a := getAlert(t, s, first.Alert.ID)
	if a.Occurrences != 2 || !a.LastSeen.Equal(alertT0.Add(time.Minute)) {
		t.Errorf("late observation moved last seen back: %+v", a)
	}
}

func testAlertEscalation(t *testing.T, s audit.AlertStore) {
	var id string
	for i, sev := range []audit.Severity{audit.SeverityLow, audit.SeverityCritical, audit.SeverityMedium} {
		c := cond("k", alertT0.Add(time.Duration(i)*time.Second))
		c.Severity = sev
		id = raise(t, s, c).Alert.ID
	}
	if a := getAlert(t, s, id); a.Severity != audit.SeverityCritical || a.Occurrences != 3 {
		t.Errorf("severity %s occurrences %d, want CRITICAL 3", a.Severity, a.Occurrences)
	}
}

// A condition that stands for several observations (a raiser folded repeats)
// counts them all, when it opens the alert and when it updates it.
func testAlertFoldedOccurrences(t *testing.T, s audit.AlertStore) {
	c := cond("k", alertT0)
	c.Occurrences = 3
	first := raise(t, s, c)
	if first.Alert.Occurrences != 3 {
		t.Errorf("opened with %d occurrences, want 3", first.Alert.Occurrences)
	}
	c = cond("k", alertT0.Add(time.Second))
	c.Occurrences = 4
	raise(t, s, c)
	raise(t, s, cond("k", alertT0.Add(2*time.Second))) // 0: one observation
	if a := getAlert(t, s, first.Alert.ID); a.Occurrences != 8 {
		t.Errorf("occurrences %d, want 3+4+1", a.Occurrences)
	}
}

func testAlertConcurrent(t *testing.T, s audit.AlertStore) {
	const n = 20
	var wg sync.WaitGroup
	results := make([]audit.AlertRaise, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.RaiseAlert(ctxFor(t), cond("concurrent", alertT0.Add(time.Duration(i)*time.Millisecond)))
		})
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("raise %d: %v", i, errs[i])
		}
		if results[i].Created {
			created++
		}
	}
	alerts, _, err := s.ListAlerts(ctxFor(t), audit.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(alerts) != 1 || alerts[0].Occurrences != n {
		t.Fatalf("created %d, alerts %d, occurrences %v; want 1 alert with %d", created, len(alerts), alerts, n)
	}
	if !alerts[0].LastSeen.Equal(alertT0.Add((n - 1) * time.Millisecond)) {
		t.Errorf("last seen %s", alerts[0].LastSeen)
	}
}

func testAlertTransitions(t *testing.T, s audit.AlertStore) {
	ctx := ctxFor(t)
	a := raise(t, s, cond("a", alertT0)).Alert
	before := time.Now().Add(-time.Second)
	ack, err := s.TransitionAlert(ctx, a.ID, audit.AlertAcknowledged, "alice", "looking")
	if err != nil {
		t.Fatal(err)
	}
	stored := getAlert(t, s, a.ID)
	if stored.Status != audit.AlertAcknowledged || stored.AcknowledgedBy != "alice" || stored.StatusNote != "looking" ||
		stored.AcknowledgedAt == nil || stored.AcknowledgedAt.Before(before) || stored.ResolvedAt != nil {
		t.Errorf("acknowledged: %+v", stored)
	}
	if ack.Status != stored.Status || !ack.AcknowledgedAt.Equal(*stored.AcknowledgedAt) {
		t.Errorf("returned %+v, stored %+v", ack, stored)
	}
	res, err := s.TransitionAlert(ctx, a.ID, audit.AlertResolved, "bob", "fixed the proxy")
	if err != nil {
		t.Fatal(err)
	}
	stored = getAlert(t, s, a.ID)
	if stored.Status != audit.AlertResolved || stored.ResolvedBy != "bob" || stored.StatusNote != "fixed the proxy" ||
		stored.ResolvedAt == nil || stored.AcknowledgedBy != "alice" || res.ResolvedBy != "bob" {
		t.Errorf("resolved: %+v", stored)
	}

	// Resolve straight from active, dismiss from active and from acknowledged.
	for _, tc := range []struct {
		key  string
		path []audit.AlertStatus
	}{
		{"b", []audit.AlertStatus{audit.AlertResolved}},
		{"c", []audit.AlertStatus{audit.AlertDismissed}},
		{"d", []audit.AlertStatus{audit.AlertAcknowledged, audit.AlertDismissed}},
	} {
		id := raise(t, s, cond(tc.key, alertT0)).Alert.ID
		for _, to := range tc.path {
			if _, err := s.TransitionAlert(ctx, id, to, "carol", ""); err != nil {
				t.Fatalf("%s → %s: %v", tc.key, to, err)
			}
		}
		got := getAlert(t, s, id)
		if got.Status != tc.path[len(tc.path)-1] || got.ResolvedBy != "carol" || got.ResolvedAt == nil {
			t.Errorf("%s: %+v", tc.key, got)
		}
	}
}

func testAlertIllegalTransitions(t *testing.T, s audit.AlertStore) {
	ctx := ctxFor(t)
	id := raise(t, s, cond("x", alertT0)).Alert.ID
	_, err := s.TransitionAlert(ctx, "alt_000000000000ffffffffffffffff", audit.AlertAcknowledged, "alice", "")
	wantCode(t, "unknown id", err, audit.CodeNotFound)
	_, err = s.TransitionAlert(ctx, id, audit.AlertAcknowledged, "  ", "")
	wantCode(t, "empty by", err, audit.CodeInvalid)
	_, err = s.TransitionAlert(ctx, id, audit.AlertActive, "alice", "")
	wantCode(t, "to active", err, audit.CodeInvalid)

	if _, err := s.TransitionAlert(ctx, id, audit.AlertAcknowledged, "alice", ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.TransitionAlert(ctx, id, audit.AlertAcknowledged, "alice", "")
	wantCode(t, "acknowledge twice", err, audit.CodeConflict)
	if _, err := s.TransitionAlert(ctx, id, audit.AlertDismissed, "alice", "false positive"); err != nil {
		t.Fatal(err)
	}
	for _, to := range []audit.AlertStatus{audit.AlertAcknowledged, audit.AlertResolved, audit.AlertDismissed} {
		_, err = s.TransitionAlert(ctx, id, to, "alice", "")
		wantCode(t, "dismissed → "+string(to), err, audit.CodeConflict)
	}
	if got := getAlert(t, s, id); got.Status != audit.AlertDismissed || got.StatusNote != "false positive" {
		t.Errorf("a refused transition changed the alert: %+v", got)
	}
}

func testAlertClosedNotReopened(t *testing.T, s audit.AlertStore) {
	id := raise(t, s, cond("k", alertT0)).Alert.ID
	if _, err := s.TransitionAlert(ctxFor(t), id, audit.AlertResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	r := raise(t, s, cond("k", alertT0.Add(time.Second)))
	if !r.Created || r.Alert.ID == id {
		t.Errorf("a repeat after resolution updated the closed alert")
	}
	if got := getAlert(t, s, id); got.Occurrences != 1 || got.ResolvedBy != "alice" {
		t.Errorf("closed alert changed: %+v", got)
	}
}

func testAlertPagination(t *testing.T, s audit.AlertStore) {
	// 23 alerts; groups of three share a first-seen instant, so the id must
	// break ties for the cursor.
	want := map[string]bool{}
	for i := range 23 {
		r := raise(t, s, cond(fmt.Sprintf("page-%02d", i), alertT0.Add(time.Duration(i/3)*time.Second)))
		want[r.Alert.ID] = true
	}
	var all []audit.Alert
	cursor, pages := "", 0
	for {
		page, next, err := s.ListAlerts(ctxFor(t), audit.AlertFilter{Limit: 5, After: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page) > 5 || (next != "" && len(page) != 5) {
			t.Fatalf("page %d: %d alerts, next %q", pages, len(page), next)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if pages != 5 || len(all) != 23 {
		t.Fatalf("%d pages, %d alerts; want 5 pages, 23 alerts", pages, len(all))
	}
	seen := map[string]bool{}
	for i, a := range all {
		if !want[a.ID] || seen[a.ID] {
			t.Fatalf("alert %d (%s): unexpected or repeated", i, a.ID)
		}
		seen[a.ID] = true
		if i > 0 {
			p := all[i-1]
			if a.FirstSeen.After(p.FirstSeen) || (a.FirstSeen.Equal(p.FirstSeen) && a.ID >= p.ID) {
				t.Fatalf("not newest first at %d: %s/%s after %s/%s", i, a.FirstSeen, a.ID, p.FirstSeen, p.ID)
			}
		}
	}
	// The default limit and the maximum.
	page, next, err := s.ListAlerts(ctxFor(t), audit.AlertFilter{Limit: 5000})
	if err != nil || len(page) != 23 || next != "" {
		t.Errorf("limit above the maximum: %d alerts, next %q, %v", len(page), next, err)
	}
}

func testAlertFilters(t *testing.T, s audit.AlertStore) {
	ctx := ctxFor(t)
	mk := func(key, org string, typ audit.AlertType, sev audit.Severity, at time.Time) string {
		c := cond(key, at)
		c.OrganizationID, c.Type, c.Severity = org, typ, sev
		return raise(t, s, c).Alert.ID
	}
	a := mk("a", "org-1", audit.AlertSecurity, audit.SeverityHigh, alertT0)
	b := mk("b", "org-2", audit.AlertSystem, audit.SeverityLow, alertT0.Add(time.Hour))
	c := mk("c", "org-1", audit.AlertPerformance, audit.SeverityCritical, alertT0.Add(2*time.Hour))
	d := mk("d", "", audit.AlertCompliance, audit.SeverityMedium, alertT0.Add(3*time.Hour))
	if _, err := s.TransitionAlert(ctx, b, audit.AlertAcknowledged, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionAlert(ctx, c, audit.AlertResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		f    audit.AlertFilter
		want []string
	}{
		"none":          {audit.AlertFilter{}, []string{d, c, b, a}},
		"status":        {audit.AlertFilter{Status: []audit.AlertStatus{audit.AlertActive}}, []string{d, a}},
		"statuses":      {audit.AlertFilter{Status: []audit.AlertStatus{audit.AlertAcknowledged, audit.AlertResolved}}, []string{c, b}},
		"severity":      {audit.AlertFilter{Severity: []audit.Severity{audit.SeverityHigh, audit.SeverityCritical}}, []string{c, a}},
		"type":          {audit.AlertFilter{Type: []audit.AlertType{audit.AlertSystem}}, []string{b}},
		"organization":  {audit.AlertFilter{OrganizationID: "org-1"}, []string{c, a}},
		"since":         {audit.AlertFilter{Since: alertT0.Add(time.Hour)}, []string{d, c, b}},
		"until":         {audit.AlertFilter{Until: alertT0.Add(time.Hour)}, []string{a}},
		"since+until":   {audit.AlertFilter{Since: alertT0.Add(time.Hour), Until: alertT0.Add(3 * time.Hour)}, []string{c, b}},
		"combined":      {audit.AlertFilter{OrganizationID: "org-1", Status: []audit.AlertStatus{audit.AlertActive}}, []string{a}},
		"nothing":       {audit.AlertFilter{OrganizationID: "org-9"}, nil},
		"scope":         {audit.AlertFilter{Organizations: []string{"org-2", "org-1"}}, []string{c, b, a}},
		"scope of one":  {audit.AlertFilter{Organizations: []string{"org-2"}}, []string{b}},
		"empty scope":   {audit.AlertFilter{Organizations: []string{}}, nil},
		"scope+org":     {audit.AlertFilter{Organizations: []string{"org-2"}, OrganizationID: "org-1"}, nil},
		"injection-ish": {audit.AlertFilter{OrganizationID: "org-1' OR '1'='1"}, nil},
	} {
		got, _, err := s.ListAlerts(ctx, tc.f)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		ids := make([]string, len(got))
		for i, x := range got {
			ids[i] = x.ID
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: got %v, want %v", name, ids, tc.want)
		}
	}
}

func testAlertStatistics(t *testing.T, s audit.AlertStore) {
	ctx := ctxFor(t)
	st, err := s.AlertStatistics(ctx, audit.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 0 || len(st.ByStatus) != 4 || len(st.BySeverity) != 4 || len(st.ByType) != 4 {
		t.Errorf("empty store: %+v", st)
	}
	for i, sev := range []audit.Severity{audit.SeverityHigh, audit.SeverityHigh, audit.SeverityLow} {
		c := cond(fmt.Sprintf("s%d", i), alertT0.Add(time.Duration(i)*time.Hour))
		c.Severity = sev
		if i == 2 {
			c.Type, c.OrganizationID = audit.AlertSystem, "org-2"
		}
		id := raise(t, s, c).Alert.ID
		if i == 1 {
			if _, err := s.TransitionAlert(ctx, id, audit.AlertDismissed, "alice", ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	raise(t, s, cond("s0", alertT0.Add(time.Minute))) // a repeat is not another alert
	st, err = s.AlertStatistics(ctx, audit.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 3 || st.ByStatus[audit.AlertActive] != 2 || st.ByStatus[audit.AlertDismissed] != 1 ||
		st.BySeverity[audit.SeverityHigh] != 2 || st.BySeverity[audit.SeverityLow] != 1 ||
		st.ByType[audit.AlertSecurity] != 2 || st.ByType[audit.AlertSystem] != 1 || st.ByType[audit.AlertCompliance] != 0 {
		t.Errorf("statistics: %+v", st)
	}
	st, err = s.AlertStatistics(ctx, audit.AlertFilter{OrganizationID: "org-1", Status: []audit.AlertStatus{audit.AlertActive}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 1 || st.BySeverity[audit.SeverityHigh] != 1 || st.ByStatus[audit.AlertDismissed] != 0 {
		t.Errorf("filtered statistics: %+v", st)
	}
}

func testAlertDeliveries(t *testing.T, s audit.AlertStore) {
	dl, ok := s.(deliveryLog)
	if !ok {
		t.Fatalf("%T does not record deliveries", s)
	}
	ctx := ctxFor(t)
	id := raise(t, s, cond("k", alertT0)).Alert.ID
	want := []audit.AlertDelivery{
		{AlertID: id, DeliveryID: "dlv-1", Destination: "ops", Attempt: 1, Status: audit.DeliveryRetrying, HTTPStatus: 500, Error: "HTTP 500", At: alertT0},
		{AlertID: id, DeliveryID: "dlv-1", Destination: "ops", Attempt: 2, Status: audit.DeliveryDelivered, HTTPStatus: 204, At: alertT0.Add(time.Second)},
		{AlertID: id, DeliveryID: "dlv-2", Destination: "siem", Attempt: 0, Status: audit.DeliveryDropped, Error: "queue full", At: alertT0.Add(2 * time.Second)},
	}
	for _, d := range want {
		if err := dl.RecordDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := dl.ListAlertDeliveries(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d deliveries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] && !(got[i].At.Equal(want[i].At) && withAt(got[i], want[i].At) == want[i]) {
			t.Errorf("delivery %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := dl.RecordDelivery(ctx, audit.AlertDelivery{AlertID: id, DeliveryID: "x", Destination: "ops", Status: "lost", At: alertT0}); err == nil {
		t.Error("an unknown delivery status was stored")
	}
}

func withAt(d audit.AlertDelivery, at time.Time) audit.AlertDelivery {
	d.At = at
	return d
}

// batchStore returns s as an AlertBatchStore, skipping the test when it is not one.
func batchStore(t *testing.T, s audit.AlertStore) audit.AlertBatchStore {
	t.Helper()
	bs, ok := s.(audit.AlertBatchStore)
	if !ok {
		t.Skip("the store does not raise alerts in batches")
	}
	return bs
}

// batchConditions is a batch that exercises every decision: new keys, repeats
// within the window, a repeat after it (the open alert superseded inside the
// batch), an out-of-order sighting, escalation, and keys with an alert opened
// before the batch (one to update, one to supersede).
func batchConditions() (before, batch []audit.AlertCondition) {
	before = []audit.AlertCondition{cond("open-then-repeat", alertT0), cond("open-then-stale", alertT0)}
	at := func(key string, d time.Duration, sev audit.Severity) audit.AlertCondition {
		c := cond(key, alertT0.Add(d))
		c.Severity = sev
		c.Tags = append(c.Tags, key)
		return c
	}
	batch = []audit.AlertCondition{
		at("a", time.Minute, audit.SeverityHigh),
		at("b", time.Minute, audit.SeverityLow),
		at("a", 2*time.Minute, audit.SeverityCritical),
		at("open-then-repeat", 3*time.Minute, audit.SeverityHigh),
		at("b", 10*time.Minute, audit.SeverityLow), // after b's window: supersedes the alert opened above
		at("a", 90*time.Second, audit.SeverityMedium),
		at("open-then-stale", time.Hour, audit.SeverityHigh),
		at("b", 11*time.Minute, audit.SeverityMedium),
	}
	return before, batch
}

// comparableAlerts strips what differs between two stores by construction.
func comparableAlerts(as []audit.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		a.ID, a.UpdatedAt, a.ResolvedAt = "", time.Time{}, nil
		b, _ := json.Marshal(a)
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// RaiseAlerts leaves the same alerts, and reports the same raises, as
// RaiseAlert one condition at a time.
func testAlertBatchEqualsOneByOne(t *testing.T, s audit.AlertStore) {
	bs := batchStore(t, s)
	before, batch := batchConditions()
	for _, c := range before {
		c.DedupKey = "single:" + c.DedupKey
		raise(t, s, c)
		c.DedupKey = "batch:" + c.DedupKey[len("single:"):]
		raise(t, s, c)
	}
	var single []audit.AlertRaise
	for _, c := range batch {
		c.DedupKey = "single:" + c.DedupKey
		single = append(single, raise(t, s, c))
	}
	prefixed := make([]audit.AlertCondition, len(batch))
	for i, c := range batch {
		c.DedupKey = "batch:" + c.DedupKey
		prefixed[i] = c
	}
	got, err := bs.RaiseAlerts(ctxFor(t), prefixed)
	if err != nil {
		t.Fatalf("RaiseAlerts: %v", err)
	}
	if len(got) != len(batch) {
		t.Fatalf("%d raises for %d conditions", len(got), len(batch))
	}
	created := 0
	for i := range batch {
		if got[i].Created != single[i].Created || got[i].Alert.Occurrences != single[i].Alert.Occurrences ||
			got[i].Alert.Severity != single[i].Alert.Severity || !got[i].Alert.LastSeen.Equal(single[i].Alert.LastSeen) {
			t.Errorf("condition %d (%s): batch raised %+v, one by one %+v", i, batch[i].DedupKey, got[i], single[i])
		}
		if got[i].Created {
			created++
		}
	}
	if created != 4 {
		t.Errorf("%d alerts created, want 4 (a, b, b after its window, open-then-stale)", created)
	}
	all, _, err := s.ListAlerts(ctxFor(t), audit.AlertFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ones, batched []audit.Alert
	for _, a := range all {
		if key, ok := strings.CutPrefix(a.DedupKey, "single:"); ok {
			a.DedupKey = key
			ones = append(ones, a)
		} else if key, ok := strings.CutPrefix(a.DedupKey, "batch:"); ok {
			a.DedupKey = key
			batched = append(batched, a)
		}
	}
	if len(ones) != 6 {
		t.Fatalf("one by one left %d alerts, want 6", len(ones))
	}
	if a, b := comparableAlerts(batched), comparableAlerts(ones); !slices.Equal(a, b) {
		t.Errorf("alerts differ:\nbatch:      %v\none by one: %v", a, b)
	}
}

// Batches that share keys, raised at once from several goroutines (as several
// workers do), neither deadlock nor open a key twice.
func testAlertConcurrentBatches(t *testing.T, s audit.AlertStore) {
	bs := batchStore(t, s)
	const workers, keys = 6, 12
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			var cs []audit.AlertCondition
			for k := range keys {
				// Each worker lists every key once, in its own order:
				// rotated, and backwards for every other worker.
				i := (k + 5*w) % keys
				if w%2 == 1 {
					i = keys - 1 - i
				}
				cs = append(cs, cond(fmt.Sprintf("shared-%02d", i), alertT0.Add(time.Duration(w)*time.Second)))
			}
			_, errs[w] = bs.RaiseAlerts(ctxFor(t), cs)
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	all, _, err := s.ListAlerts(ctxFor(t), audit.AlertFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	occurrences := map[string]int64{}
	for _, a := range all {
		if a.Status != audit.AlertActive {
			t.Errorf("alert %s is %s", a.DedupKey, a.Status)
		}
		occurrences[a.DedupKey] += a.Occurrences
	}
	if len(all) != keys {
		t.Errorf("%d alerts for %d keys", len(all), keys)
	}
	for key, n := range occurrences {
		if n != workers {
			t.Errorf("%s: %d occurrences, want %d", key, n, workers)
		}
	}
}
