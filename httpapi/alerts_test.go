package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/sqlite"
)

type alertFixture struct {
	srv   *httptest.Server
	store *sqlite.Store
}

func newAlertFixture(t *testing.T, withStore bool) *alertFixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: store, Auth: adminAuth(testKey)}
	if withStore {
		opts.Alerts.Store = store
	}
	srv := httptest.NewServer(New(opts))
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	return &alertFixture{srv: srv, store: store}
}

var alertBase = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func (f *alertFixture) raise(t *testing.T, key, org string, typ audit.AlertType, sev audit.Severity, at time.Time) audit.Alert {
	t.Helper()
	r, err := f.store.RaiseAlert(context.Background(), audit.AlertCondition{
		OrganizationID: org, Type: typ, Severity: sev, DedupKey: key, DedupWindow: time.Minute,
		Title: "alert " + key, Source: "test", ObservedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.Alert
}

// do sends a request with the test key (or the given one) and decodes the JSON answer into out.
func (f *alertFixture) do(t *testing.T, method, path, body string, out any, key ...string) int {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	k := testKey
	if len(key) > 0 {
		k = key[0]
	}
	if k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

func ids(alerts []audit.Alert) string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.Title[len("alert "):]
	}
	return strings.Join(out, ",")
}

func TestAlertRoutesRequireKey(t *testing.T) {
	f := newAlertFixture(t, true)
	a := f.raise(t, "a", "", audit.AlertSystem, audit.SeverityLow, alertBase)
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/alerts"}, {"GET", "/v1/alerts/statistics"}, {"GET", "/v1/alerts/" + a.ID},
		{"POST", "/v1/alerts/" + a.ID + "/acknowledge"}, {"POST", "/v1/alerts/" + a.ID + "/resolve"},
		{"POST", "/v1/alerts/" + a.ID + "/dismiss"},
	} {
		for _, key := range []string{"", "wrong-key"} {
			var e apiError
			if code := f.do(t, r.method, r.path, `{"by":"x"}`, &e, key); code != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
				t.Errorf("%s %s with key %q: %d %+v", r.method, r.path, key, code, e)
			}
		}
	}
	if got, _ := f.store.GetAlert(context.Background(), a.ID); got.Status != audit.AlertActive {
		t.Errorf("an unauthorised request changed the alert: %s", got.Status)
	}
}

func TestAlertRoutesWithoutStore(t *testing.T) {
	f := newAlertFixture(t, false)
	for _, path := range []string{"/v1/alerts", "/v1/alerts/statistics", "/v1/alerts/alt_x"} {
		var e apiError
		if code := f.do(t, "GET", path, "", &e); code != http.StatusServiceUnavailable || e.Error.Code != "unavailable" {
			t.Errorf("GET %s: %d %+v", path, code, e)
		}
	}
	if code := f.do(t, "POST", "/v1/alerts/alt_x/resolve", `{"by":"a"}`, nil); code != http.StatusServiceUnavailable {
		t.Errorf("POST resolve: %d", code)
	}
}

func TestListAlertsFiltersAndPages(t *testing.T) {
	f := newAlertFixture(t, true)
	f.raise(t, "a", "org-1", audit.AlertSecurity, audit.SeverityHigh, alertBase)
	b := f.raise(t, "b", "org-2", audit.AlertSystem, audit.SeverityLow, alertBase.Add(time.Hour))
	f.raise(t, "c", "org-1", audit.AlertPerformance, audit.SeverityCritical, alertBase.Add(2*time.Hour))
	f.raise(t, "d", "", audit.AlertCompliance, audit.SeverityMedium, alertBase.Add(3*time.Hour))
	if _, err := f.store.TransitionAlert(context.Background(), b.ID, audit.AlertAcknowledged, "alice", ""); err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string]string{
		"":                                    "d,c,b,a",
		"status=active":                       "d,c,a",
		"status=acknowledged,resolved":        "b",
		"status=active&status=acknowledged":   "d,c,b,a",
		"severity=high,CRITICAL":              "c,a",
		"type=system":                         "b",
		"organizationId=org-1":                "c,a",
		"since=2026-05-01T13:00:00Z":          "d,c,b",
		"until=2026-05-01T14:00:00%2B01:00":   "a", // 13:00Z, exclusive
		"organizationId=org-1&severity=HIGH":  "a",
		"organizationId=org-1'%20OR%20'1'='1": "",
	} {
		var out alertList
		if code := f.do(t, "GET", "/v1/alerts?"+query, "", &out); code != http.StatusOK {
			t.Errorf("%q: status %d", query, code)
			continue
		}
		if got := ids(out.Alerts); got != want || out.NextCursor != "" || out.Alerts == nil {
			t.Errorf("%q: got %q (next %q), want %q", query, got, out.NextCursor, want)
		}
	}

	// Pages of 3 over 7 alerts.
	for i := range 3 {
		f.raise(t, fmt.Sprintf("p%d", i), "", audit.AlertSystem, audit.SeverityLow, alertBase.Add(-time.Duration(i+1)*time.Hour))
	}
	var all []string
	cursor, pages := "", 0
	for {
		var out alertList
		q := "/v1/alerts?limit=3"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		if code := f.do(t, "GET", q, "", &out); code != http.StatusOK {
			t.Fatalf("page %d: %d", pages, code)
		}
		pages++
		all = append(all, ids(out.Alerts))
		if cursor = out.NextCursor; cursor == "" {
			break
		}
	}
	if got := strings.Join(all, "|"); pages != 3 || got != "d,c,b|a,p0,p1|p2" {
		t.Errorf("%d pages: %s", pages, got)
	}
}

func TestListAlertsRejectsBadParameters(t *testing.T) {
	f := newAlertFixture(t, true)
	for query, param := range map[string]string{
		"status=open":        "status",
		"severity=INFO":      "severity",
		"type=METRICS":       "type",
		"since=yesterday":    "since",
		"until=2026-05-01":   "until",
		"limit=0":            "limit",
		"limit=1001":         "limit",
		"limit=ten":          "limit",
		"cursor=not-a-token": "cursor",
	} {
		var e apiError
		code := f.do(t, "GET", "/v1/alerts?"+query, "", &e)
		if code != http.StatusBadRequest || e.Error.Code != "invalid" || !strings.HasPrefix(e.Error.Message, param+":") {
			t.Errorf("%q: %d %+v, want 400 naming %s", query, code, e, param)
		}
	}
	var e apiError
	if code := f.do(t, "GET", "/v1/alerts/statistics?severity=nope", "", &e); code != http.StatusBadRequest || !strings.HasPrefix(e.Error.Message, "severity:") {
		t.Errorf("statistics: %d %+v", code, e)
	}
}

func TestAlertStatisticsRoute(t *testing.T) {
	f := newAlertFixture(t, true)
	f.raise(t, "a", "org-1", audit.AlertSecurity, audit.SeverityHigh, alertBase)
	f.raise(t, "a", "org-1", audit.AlertSecurity, audit.SeverityHigh, alertBase.Add(time.Second)) // a repeat
	b := f.raise(t, "b", "org-2", audit.AlertSystem, audit.SeverityLow, alertBase)
	if _, err := f.store.TransitionAlert(context.Background(), b.ID, audit.AlertDismissed, "bob", "noise"); err != nil {
		t.Fatal(err)
	}
	var st audit.AlertStatistics
	if code := f.do(t, "GET", "/v1/alerts/statistics", "", &st); code != http.StatusOK {
		t.Fatal(code)
	}
	if st.Total != 2 || st.ByStatus[audit.AlertActive] != 1 || st.ByStatus[audit.AlertDismissed] != 1 ||
		st.BySeverity[audit.SeverityHigh] != 1 || st.ByType[audit.AlertSystem] != 1 || st.ByType[audit.AlertCompliance] != 0 {
		t.Errorf("statistics: %+v", st)
	}
	if code := f.do(t, "GET", "/v1/alerts/statistics?organizationId=org-2", "", &st); code != http.StatusOK || st.Total != 1 || st.ByStatus[audit.AlertDismissed] != 1 {
		t.Errorf("filtered statistics: %d %+v", code, st)
	}
}

func TestGetAndTransitionAlert(t *testing.T) {
	f := newAlertFixture(t, true)
	a := f.raise(t, "a", "org-1", audit.AlertSecurity, audit.SeverityHigh, alertBase)

	var got audit.Alert
	if code := f.do(t, "GET", "/v1/alerts/"+a.ID, "", &got); code != http.StatusOK || got.ID != a.ID || got.Status != audit.AlertActive {
		t.Fatalf("get: %d %+v", code, got)
	}
	var e apiError
	if code := f.do(t, "GET", "/v1/alerts/alt_unknown", "", &e); code != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Errorf("get unknown: %d %+v", code, e)
	}

	if code := f.do(t, "POST", "/v1/alerts/"+a.ID+"/acknowledge", `{"by":"alice","note":"on it"}`, &got); code != http.StatusOK ||
		got.Status != audit.AlertAcknowledged || got.AcknowledgedBy != "alice" || got.StatusNote != "on it" || got.AcknowledgedAt == nil {
		t.Fatalf("acknowledge: %d %+v", code, got)
	}
	if code := f.do(t, "POST", "/v1/alerts/"+a.ID+"/acknowledge", `{"by":"alice"}`, &e); code != http.StatusConflict || e.Error.Code != "conflict" {
		t.Errorf("acknowledge twice: %d %+v", code, e)
	}
	if code := f.do(t, "POST", "/v1/alerts/"+a.ID+"/resolve", `{"by":"bob","note":"fixed"}`, &got); code != http.StatusOK ||
		got.Status != audit.AlertResolved || got.ResolvedBy != "bob" {
		t.Fatalf("resolve: %d %+v", code, got)
	}
	if code := f.do(t, "POST", "/v1/alerts/"+a.ID+"/dismiss", `{"by":"bob"}`, &e); code != http.StatusConflict {
		t.Errorf("dismiss a resolved alert: %d %+v", code, e)
	}
	d := f.raise(t, "d", "", audit.AlertSystem, audit.SeverityLow, alertBase)
	if code := f.do(t, "POST", "/v1/alerts/"+d.ID+"/dismiss", `{"by":"carol","note":"false positive"}`, &got); code != http.StatusOK || got.Status != audit.AlertDismissed {
		t.Errorf("dismiss: %d %+v", code, got)
	}
	if code := f.do(t, "POST", "/v1/alerts/alt_unknown/resolve", `{"by":"bob"}`, &e); code != http.StatusNotFound {
		t.Errorf("resolve unknown: %d %+v", code, e)
	}

	open := f.raise(t, "o", "", audit.AlertSystem, audit.SeverityLow, alertBase)
	for body, want := range map[string]int{
		`{"by":"a","extra":1}`: http.StatusBadRequest,
		`{"by":"a"}{"by":"b"}`: http.StatusBadRequest,
		`[1]`:                  http.StatusBadRequest,
		`{"by":"a","note":"` + strings.Repeat("x", 20000) + `"}`: http.StatusRequestEntityTooLarge,
	} {
		if code := f.do(t, "POST", "/v1/alerts/"+open.ID+"/resolve", body, &e); code != want || e.Error.Code != "invalid" {
			t.Errorf("body %.40q: %d %+v, want %d", body, code, e, want)
		}
	}
	if got, _ := f.store.GetAlert(context.Background(), open.ID); got.Status != audit.AlertActive {
		t.Errorf("a refused request changed the alert: %s", got.Status)
	}
	// Without "by" (no body, {} or blanks) the caller's principal is who changed it.
	for _, body := range []string{``, `{}`, `{"by":"   "}`} {
		a := f.raise(t, "by-"+body, "", audit.AlertSystem, audit.SeverityLow, alertBase)
		if code := f.do(t, "POST", "/v1/alerts/"+a.ID+"/acknowledge", body, &got); code != http.StatusOK || got.AcknowledgedBy != "config:test-admin" {
			t.Errorf("acknowledge with body %q: %d, by %q; want the principal", body, code, got.AcknowledgedBy)
		}
	}
}
