package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/report"
)

// reportGenerator is the report generator cmd/audit-worker makes from its
// configuration, over the test's store and HMAC key.
func reportGenerator(cfg config.Config, store report.Store, hmacKey []byte) *report.Generator {
	opts := cfg.ReportOptions()
	opts.Store = store
	opts.HMACKey = func() []byte { return hmacKey }
	return report.New(opts)
}

// runSchedules makes the reports of schedules that are due at now, as one
// tick of the worker's scheduler does.
func (w *worker) runSchedules(now time.Time, schedules ...report.Schedule) {
	w.t.Helper()
	sched, err := report.NewScheduler(report.SchedulerOptions{Generator: w.reports, Runs: w.store, Schedules: schedules,
		Now: func() time.Time { return now }})
	if err != nil {
		w.t.Fatalf("scheduler: %v", err)
	}
	if err := sched.Tick(context.Background()); err != nil {
		w.t.Fatalf("scheduler tick: %v", err)
	}
}

// dirDestination writes scheduled reports into a directory.
type dirDestination string

func (d dirDestination) Deliver(_ context.Context, del report.Delivery) (string, error) {
	path := filepath.Join(string(d), del.Name)
	return path, os.WriteFile(path, del.Body, 0o600)
}

func (d dirDestination) String() string { return string(d) }

// downDestination refuses every delivery, like a webhook that is down.
type downDestination struct{}

func (downDestination) Deliver(context.Context, report.Delivery) (string, error) {
	return "", errors.New("connection refused")
}

func (downDestination) String() string { return "https://reports.invalid/hook" }

// November's PHI activity of org-a (and one event of org-b, which org-a's
// report must leave out), in UTC: the default off hours are 22:00–05:59.
func (w *worker) sendHIPAAData() {
	w.t.Helper()
	type ev struct {
		org, at, action, status, principal, resource, id, class string
	}
	events := []ev{
		{orgA, "2026-11-03T10:00:00Z", "fhir.patient.read", "success", "dr-ames", "Patient", "p-1", "PHI"},
		{orgA, "2026-11-03T10:05:00Z", "fhir.patient.read", "success", "dr-ames", "Patient", "p-2", "PHI"},
		{orgA, "2026-11-03T23:30:00Z", "fhir.patient.read", "success", "dr-ames", "Patient", "p-3", "PHI"},
		{orgA, "2026-11-04T02:10:00Z", "fhir.patient.search", "success", "dr-ames", "Patient", "p-3", "PHI"},
		{orgA, "2026-11-05T09:00:00Z", "fhir.observation.update", "success", "nurse-bo", "Observation", "o-1", "PHI"},
		{orgA, "2026-11-05T09:01:00Z", "fhir.patient.read", "failure", "nurse-bo", "Patient", "p-9", "PHI"},
		{orgA, "2026-11-06T14:00:00Z", "fhir.emergency.read", "success", "dr-cruz", "Patient", "p-4", "PHI"},
		{orgA, "2026-11-07T15:00:00Z", "fhir.patient.break-glass.read", "success", "dr-cruz", "Patient", "p-5", "PHI"},
		{orgA, "2026-11-08T08:00:00Z", "auth.login.success", "success", "dr-cruz", "User", "u-1", "INTERNAL"},
		{orgA, "2026-11-20T12:00:00Z", "billing.invoice.create", "success", "clerk-di", "Invoice", "i-1", ""},
		{orgB, "2026-11-03T11:00:00Z", "fhir.patient.read", "success", "dr-else", "Patient", "p-1", "PHI"},
	}
	var sealed [][]byte
	for _, e := range events {
		sealed = append(sealed, w.event(e.org, func(m map[string]any) {
			m["timestamp"], m["action"], m["status"], m["principalId"] = e.at, e.action, e.status, e.principal
			m["targetResourceType"], m["targetResourceId"] = e.resource, e.id
			if e.class == "" {
				delete(m, "dataClassification")
			} else {
				m["dataClassification"] = e.class
			}
		}))
	}
	if r := w.send(sealed...); r.Stored != len(events) {
		w.t.Fatalf("stored %d of %d events: %+v", r.Stored, len(events), r.Results)
	}
}

// postReport asks the API for a report and returns its status, content type
// and body.
func (w *worker) postReport(typ, accept, key string, criteria map[string]any) (int, string, []byte) {
	w.t.Helper()
	body, _ := json.Marshal(map[string]any{"criteria": criteria})
	req, _ := http.NewRequest("POST", w.URL+"/v1/reports/"+typ, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("report %s: %v", typ, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatalf("report %s: %v", typ, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), data
}

// lookup reads a dotted path of a decoded JSON document.
func lookup(doc map[string]any, path string) (any, bool) {
	var v any = doc
	for key := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// TestReportFiguresMatchTheAPI makes org-a's HIPAA report of November from
// the console, as an auditor of org-a, and checks every figure the page
// shows against the JSON the API answers for the same criteria; then it
// downloads the CSV and the PDF through the console and checks what the
// browser received.
func TestReportFiguresMatchTheAPI(t *testing.T) {
	w := newWorker(t)
	w.sendHIPAAData()
	criteria := map[string]any{"organizationIds": []string{orgA}, "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
	status, ctype, data := w.postReport("hipaa", "application/json", w.keys["auditor-a"], criteria)
	if status != http.StatusOK || !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("API report: HTTP %d, %s: %s", status, ctype, data)
	}
	var api map[string]any
	if err := json.Unmarshal(data, &api); err != nil {
		t.Fatal(err)
	}
	// The data were chosen so that the figures are not zero: a page that
	// shows nothing, or the wrong member, cannot pass.
	for path, want := range map[string]float64{"summary.totalEvents": 10, "hipaaSpecific.phiEvents": 8,
		"hipaaSpecific.phiAccessEvents": 7, "hipaaSpecific.unauthorizedAttempts": 1, "hipaaSpecific.afterHoursAccessEvents": 2,
		"hipaaSpecific.emergencyAccess": 1, "hipaaSpecific.breakGlassEvents": 1, "hipaaSpecific.phiModificationEvents": 1} {
		if got, _ := lookup(api, path); got != want {
			t.Errorf("the API's %s is %v, want %v (the test data changed?)", path, got, want)
		}
	}

	tb := newTab(t)
	tb.signIn(w.URL, w.keys["auditor-a"])
	tb.open(w.URL, "#/reports", `document.getElementById('no-runs') !== null`)
	// request makes the report in format from the console and returns the
	// file the browser saved.
	request := func(format string) []byte {
		t.Helper()
		data := tb.downloaded(chromedp.SetValue(chromedp.CSS("#r-type"), "hipaa"), chromedp.SetValue(chromedp.CSS("#r-format"), format),
			chromedp.SetValue(chromedp.CSS("#r-from"), "2026-11-01"), chromedp.SetValue(chromedp.CSS("#r-to"), "2026-12-01"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('report-status').replaceChildren()`),
			chromedp.Click(chromedp.CSS("#report-download")))
		tb.waitFor(`document.getElementById('report-file') !== null`, "the "+format+" report")
		want := "report-hipaa-org-a-2026-11-01-2026-12-01." + format
		if name := eval[string](tb, `document.getElementById('report-file').download`); name != want {
			t.Errorf("the file is named %q, want %q", name, want)
		}
		return data
	}

	var saved map[string]any
	if err := json.Unmarshal(request("json"), &saved); err != nil {
		t.Fatalf("the JSON download: %v", err)
	}
	shown := eval[map[string]string](tb, `Object.fromEntries([...document.querySelectorAll('#report-figures [data-figure]')]
		.map((el) => [el.dataset.figure, el.innerText]))`)
	if len(shown) < 12 {
		t.Errorf("the page shows %d figures: %q", len(shown), shown)
	}
	for path, text := range shown {
		want, ok := lookup(api, path)
		if !ok {
			t.Errorf("the page shows %s = %q, which the API's report has not", path, text)
			continue
		}
		got, err := strconv.ParseFloat(strings.ReplaceAll(text, ",", ""), 64)
		if err != nil || got != want {
			t.Errorf("the page shows %s = %q, the API says %v", path, text, want)
		}
	}
	if orgs := tb.text("#fig-organizations"); orgs != orgA {
		t.Errorf("the report covers %q, want %s", orgs, orgA)
	}
	findings := eval[[]string](tb, `[...document.querySelectorAll('#findings-table tbody tr')].map((tr) => tr.innerText.replace(/\s+/g, ' ').trim())`)
	if len(findings) != 1 || !strings.HasPrefix(findings[0], "AFTER_HOURS_ACCESS low dr-ames 2") {
		t.Errorf("the findings shown are %q, want dr-ames's 2 after-hours accesses", findings)
	}
	tb.screenshot("reports")

	if id, _ := lookup(saved, "metadata.reportId"); tb.text("#report-id") != id || id == nil {
		t.Errorf("the page names report %q, the file is report %v", tb.text("#report-id"), id)
	}
	// The saved JSON is the API's report, but for its id and time.
	for _, path := range []string{"summary", "hipaaSpecific", "riskAssessment", "metadata.criteria", "metadata.organizations"} {
		a, _ := lookup(api, path)
		b, _ := lookup(saved, path)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("the saved report's %s is %v, the API's %v", path, b, a)
		}
	}

	if csv := request("csv"); !bytes.Contains(csv, []byte("HIPAA")) || !bytes.Contains(csv, []byte("dr-ames")) {
		t.Errorf("the CSV download is %.300q", csv)
	}
	if ctype := eval[string](tb, `document.getElementById('report-file').dataset.type`); !strings.HasPrefix(ctype, "text/csv") {
		t.Errorf("the CSV came as %q", ctype)
	}
	if pdf := request("pdf"); len(pdf) < 1000 || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("the PDF download is %d bytes: %.40q", len(pdf), pdf)
	}
	if ctype := eval[string](tb, `document.getElementById('report-file').dataset.type`); ctype != "application/pdf" {
		t.Errorf("the PDF came as %q", ctype)
	}

	// The API's refusal, shown as it words it.
	tb.do(chromedp.SetValue(chromedp.CSS("#r-from"), "2026-12-01"), chromedp.SetValue(chromedp.CSS("#r-to"), "2026-11-01"),
		chromedp.Click(chromedp.CSS("#report-download")))
	tb.waitFor(`document.querySelector('#report-status .error') !== null`, "the refusal")
	if msg := tb.text("#report-status .error"); !strings.Contains(msg, "criteria.from") || !strings.Contains(msg, "HTTP 400") {
		t.Errorf("a period that ends before it starts shows %q", msg)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// TestReportRunsList makes scheduled runs with the worker's scheduler (one
// delivered, one whose destination is down, one of every organisation, and
// fifty daily ones, so that the list takes two pages) and checks that the
// page lists the runs an auditor of org-a may see, in the API's order, each
// with the fields the API answers.
func TestReportRunsList(t *testing.T) {
	w := newWorker(t)
	w.sendHIPAAData()
	w.runSchedules(time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC),
		report.Schedule{Name: "hipaa-monthly", Type: report.HIPAA, Organizations: []string{orgA}, Frequency: "monthly",
			TimeZone: "UTC", Format: report.PDF, Destination: dirDestination(t.TempDir())},
		report.Schedule{Name: "soc-weekly", Type: report.General, Organizations: []string{orgA}, Frequency: "weekly",
			TimeZone: "UTC", Format: report.CSV, Destination: downDestination{}},
		report.Schedule{Name: "all-orgs", Type: report.GDPR, Frequency: "daily", TimeZone: "UTC", Format: report.JSON,
			Destination: dirDestination(t.TempDir())})
	// Fifty more, recorded in the runs table directly as a replica records
	// them: making fifty reports would add seconds and test nothing more.
	ctx := context.Background()
	for day := range 50 {
		start := time.Date(2026, 10, 1+day, 0, 0, 0, 0, time.UTC)
		run, ok, err := w.store.ClaimRun(ctx, report.RunClaim{Schedule: "integrity-daily", Type: report.Integrity,
			Organizations: []string{orgA}, PeriodStart: start, PeriodEnd: start.AddDate(0, 0, 1), Format: report.JSON,
			Destination: "/srv/reports"}, "console-test", start.Add(time.Hour), time.Minute, 5)
		if err != nil || !ok {
			t.Fatalf("claim run %d: %v %v", day, ok, err)
		}
		res := report.RunResult{Status: report.RunSucceeded, ReportID: fmt.Sprint("rep-", day), Location: fmt.Sprintf("/srv/reports/%d.json", day),
			SizeBytes: int64(2000 + day), SHA256: fmt.Sprintf("%064x", day)}
		if err := w.store.FinishRun(ctx, run.ID, "console-test", res, start.Add(time.Hour+time.Second)); err != nil {
			t.Fatalf("finish run %d: %v", day, err)
		}
	}
	var api struct {
		Runs []map[string]any `json:"runs"`
	}
	if code := w.call("GET", "/v1/reports/runs", w.keys["auditor-a"], nil, &api); code != http.StatusOK {
		t.Fatalf("runs: HTTP %d", code)
	}
	if len(api.Runs) != 52 {
		t.Fatalf("an auditor of org-a sees %d runs, want 52 (not the run of every organisation)", len(api.Runs))
	}

	tb := newTab(t)
	tb.signIn(w.URL, w.keys["auditor-a"])
	tb.open(w.URL, "#/reports", `document.getElementById('runs-table') !== null`)
	rowsJS := `[...document.querySelectorAll('#runs-table tbody tr')].map((tr) => [tr.dataset.id, ...[...tr.cells].map((td) => td.innerText.trim())])`
	if n := len(eval[[][]string](tb, rowsJS)); n != 50 {
		t.Errorf("the first page lists %d runs, want 50", n)
	}
	tb.do(chromedp.Click(chromedp.CSS("#runs-more")))
	tb.waitFor(`document.querySelectorAll('#runs-table tbody tr').length > 50`, "the second page of runs")
	if more := eval[bool](tb, `document.getElementById('runs-more').hidden`); !more {
		t.Error("the last page still offers more")
	}
	cols := eval[[]string](tb, `[...document.querySelectorAll('#runs-table thead th')].map((th) => th.innerText)`)
	rows := eval[[][]string](tb, rowsJS)
	if len(rows) != len(api.Runs) {
		t.Fatalf("the page lists %d runs, the API %d", len(rows), len(api.Runs))
	}
	seen := map[string]bool{}
	for i, run := range api.Runs {
		id := fmt.Sprint(run["id"])
		if rows[i][0] != id {
			t.Fatalf("row %d is run %s, the API's is %s", i, rows[i][0], id)
		}
		seen[run["schedule"].(string)] = true
		row := map[string]string{}
		for i, c := range rows[i][1:] {
			row[cols[i]] = c
		}
		str := func(k string) string { s, _ := run[k].(string); return s }
		want := map[string]string{
			"schedule": str("schedule"), "organisations": orgA, "format": str("format"),
			"attempts": fmt.Sprint(run["attempts"]), "finished": fmtTime(run["finishedAt"]),
			"SHA-256": str("sha256"), "size": fmtBytes(run["sizeBytes"]), "error": str("error"),
		}
		if want["attempts"] != "1" || str("sha256") == "" || want["size"] == "–" {
			t.Errorf("run %v: one attempt, a size and a SHA-256 expected", run)
		}
		switch run["schedule"] {
		case "hipaa-monthly":
			want["report"], want["period"] = "HIPAA audit trail", "2026-11-01 00:00:00Z – 2026-12-01 00:00:00Z"
			want["status"], want["location"] = "succeeded", str("location")
			if !strings.HasSuffix(str("location"), ".pdf") || str("error") != "" {
				t.Errorf("the delivered run is %v", run)
			}
		case "soc-weekly":
			want["report"], want["period"] = "General compliance", "2026-11-23 00:00:00Z – 2026-11-30 00:00:00Z"
			want["status"], want["location"] = "failed retry "+fmtTime(run["nextAttemptAt"]), "https://reports.invalid/hook"
			if str("location") != "" || !strings.Contains(str("error"), "connection refused") || str("nextAttemptAt") == "" {
				t.Errorf("the failed run is %v", run)
			}
		case "integrity-daily":
			want["report"], want["status"], want["location"] = "Integrity verification", "succeeded", str("location")
			want["period"] = fmtTime(run["periodStart"]) + " – " + fmtTime(run["periodEnd"])
		default:
			t.Errorf("unexpected run %v", run)
		}
		for col, v := range want {
			if row[col] != v {
				t.Errorf("run %s (%s): the page shows %s %q, want %q", id, run["schedule"], col, row[col], v)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("the runs listed are of %v", seen)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// fmtTime is the console's fmtTime of an RFC 3339 time.
func fmtTime(v any) string {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtBytes is the console's fmtBytes of a JSON number below 1 MiB, "–"
// for none.
func fmtBytes(v any) string {
	n, ok := v.(float64)
	switch {
	case !ok:
		return "–"
	case n < 1024:
		return strconv.FormatFloat(n, 'f', 0, 64) + " B"
	}
	return strings.TrimSuffix(strconv.FormatFloat(n/1024, 'f', 1, 64), ".0") + " KiB"
}
