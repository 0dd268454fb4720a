package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/report"
)

const (
	auditorKey      = "auditor-key-0123456789abcdef"
	auditorOrgAKey  = "auditor-org-a-key-0123456789"
	auditorOrgBKey  = "auditor-org-b-key-0123456789"
	readerReportKey = "reader-key-0123456789abcdef"
)

// reportServer serves the fixture from SQLite, with access records stored
// through a processor on the same store.
func reportServer(t *testing.T) (*httptest.Server, *access.Recorder, audit.EventReader) {
	t.Helper()
	s, _ := teststores.SQLite(t)
	f := storetest.LoadFixture(t)
	f.Store(t, s)
	auth := access.NewAuthenticator(access.Options{})
	auth.SetStaticKeys([]access.StaticKey{
		{Name: "auditor", Key: auditorKey, Role: audit.RoleAuditor, Organizations: []string{audit.AllOrganizations}},
		{Name: "auditor-a", Key: auditorOrgAKey, Role: audit.RoleAuditor, Organizations: []string{"org-a"}},
		{Name: "auditor-b", Key: auditorOrgBKey, Role: audit.RoleAuditor, Organizations: []string{"org-b"}},
		{Name: "reader", Key: readerReportKey, Role: audit.RoleReader, Organizations: []string{audit.AllOrganizations}},
	})
	proc := pipeline.NewProcessor(s, pipeline.Config{Rules: audit.DefaultRules()})
	rec := access.NewRecorder(access.RecorderOptions{Pipeline: recorderPipeline{proc}, MaxWait: time.Millisecond})
	srv := httptest.NewServer(New(Options{Store: s, Auth: auth, Records: rec,
		Reports: ReportOptions{Generator: f.Generator(s), Runs: s}}))
	t.Cleanup(srv.Close)
	return srv, rec, s
}

// recorderPipeline hands access records straight to a processor.
type recorderPipeline struct{ p *pipeline.Processor }

func (r recorderPipeline) Submit(ctx context.Context, in []pipeline.Input) ([]pipeline.Outcome, error) {
	return r.p.Process(ctx, in)
}

func postReport(t *testing.T, srv *httptest.Server, key, typ, accept, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/reports/"+typ, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

const marchCriteria = `{"criteria":{"organizationIds":["org-a"],"from":"2024-03-01T00:00:00-05:00","to":"2024-04-01T00:00:00-04:00"}}`

func TestReportsOverHTTP(t *testing.T) {
	srv, _, _ := reportServer(t)
	resp, body := postReport(t, srv, auditorOrgAKey, "hipaa", "", marchCriteria)
	var doc struct {
		HIPAA  report.HIPAASpecific `json:"hipaaSpecific"`
		Events []json.RawMessage    `json:"events"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &doc) != nil || doc.HIPAA.PHIAccessEvents != 194 || len(doc.Events) != 13 {
		t.Fatalf("hipaa: %d %.300s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Report-Id") == "" || !strings.Contains(resp.Header.Get("Content-Disposition"), "report-hipaa-rpt_") {
		t.Errorf("headers %v", resp.Header)
	}
	resp, body = postReport(t, srv, auditorKey, "general", "text/csv", marchCriteria)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || !bytes.Contains(body, []byte("# Top principals")) {
		t.Errorf("csv: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = postReport(t, srv, auditorKey, "GDPR", "application/pdf", marchCriteria)
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("%PDF-")) {
		t.Errorf("pdf: %d %.40q", resp.StatusCode, body)
	}
	resp, body = postReport(t, srv, auditorKey, "integrity", "application/json;q=0.5, text/html", marchCriteria)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"verificationRate":100`)) {
		t.Errorf("integrity: %d %.300s", resp.StatusCode, body)
	}
}

func TestReportsRefuseBadRequestsWithTheReason(t *testing.T) {
	srv, _, _ := reportServer(t)
	for _, tc := range []struct {
		name, key, typ, accept, body string
		status                       int
		says                         string
	}{
		{"reader", readerReportKey, "hipaa", "", marchCriteria, 403, "reports:read"},
		{"organisation outside the scope", auditorOrgBKey, "hipaa", "", marchCriteria, 403, "criteria.organizationIds"},
		{"unknown type", auditorKey, "sox", "", marchCriteria, 400, "type: "},
		{"from after to", auditorKey, "hipaa", "", `{"criteria":{"from":"2024-04-01T00:00:00Z","to":"2024-03-01T00:00:00Z"}}`, 400, "criteria.from"},
		{"period too long", auditorKey, "hipaa", "", `{"criteria":{"from":"2022-01-01T00:00:00Z","to":"2024-03-01T00:00:00Z"}}`, 400, "limit of 400 days"},
		{"no criteria", auditorKey, "gdpr", "", `{}`, 400, "criteria: required"},
		{"misspelt member", auditorKey, "gdpr", "", `{"criterias":{}}`, 400, "criterias"},
		{"not JSON", auditorKey, "gdpr", "", `criteria`, 400, "body"},
		{"unknown criterion", auditorKey, "gdpr", "", `{"criteria":{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","org":"x"}}`, 400, `unknown field`},
		{"not acceptable", auditorKey, "gdpr", "text/html", marchCriteria, 406, "Accept"},
	} {
		resp, body := postReport(t, srv, tc.key, tc.typ, tc.accept, tc.body)
		if resp.StatusCode != tc.status || !bytes.Contains(body, []byte(tc.says)) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.name, resp.StatusCode, body, tc.status, tc.says)
		}
	}
	// A caller scoped to org-a gets org-a's report without naming it.
	resp, body := postReport(t, srv, auditorOrgAKey, "hipaa", "",
		`{"criteria":{"from":"2024-03-01T00:00:00-05:00","to":"2024-04-01T00:00:00-04:00"}}`)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"organizations":["org-a"]`)) || !bytes.Contains(body, []byte(`"totalEvents":324`)) {
		t.Errorf("scoped report: %d %.300s", resp.StatusCode, body)
	}
}

// Each report leaves its audit.access.report record.
func TestReportsAreRecorded(t *testing.T) {
	srv, rec, reader := reportServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	resp, _ := postReport(t, srv, auditorOrgAKey, "gdpr", "", marchCriteria)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	var found []audit.StoredEvent
	for time.Now().Before(deadline) && len(found) == 0 {
		time.Sleep(20 * time.Millisecond)
		found, _ = reader.SearchEvents(t.Context(), audit.EventQuery{Action: access.ActionReport, Order: audit.OrderDesc, Limit: 10})
	}
	cancel()
	<-done
	if len(found) != 1 || found[0].OrganizationID != "org-a" || found[0].PrincipalID != "config:auditor-a" ||
		!bytes.Contains(found[0].Details, []byte(`"reportType":"GDPR_PROCESSING_ACTIVITIES"`)) {
		t.Errorf("access records %+v", found)
	}
}

func TestReportRunsAreListedWithinTheScope(t *testing.T) {
	srv, _, reader := reportServer(t)
	get := func(key, query string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/reports/runs"+query, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(auditorKey, ""); code != 200 || body != "{\"runs\":[]}\n" {
		t.Errorf("empty list: %d %s", code, body)
	}
	claim := report.RunClaim{Schedule: "daily-b", Type: report.HIPAA, Organizations: []string{"org-b"},
		PeriodStart: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC),
		Format: report.PDF, Destination: "directory /reports"}
	if _, ok, err := reader.(report.RunStore).ClaimRun(t.Context(), claim, "me", time.Now(), time.Minute, 3); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if code, body := get(auditorOrgBKey, ""); code != 200 || !strings.Contains(body, `"schedule":"daily-b"`) || !strings.Contains(body, `"status":"running"`) {
		t.Errorf("org-b's auditor: %d %s", code, body)
	}
	if code, body := get(auditorOrgAKey, ""); code != 200 || body != "{\"runs\":[]}\n" {
		t.Errorf("org-a's auditor sees org-b's run: %d %s", code, body)
	}
	if code, body := get(auditorKey, "?limit=0"); code != 400 || !strings.Contains(body, "limit") {
		t.Errorf("limit 0: %d %s", code, body)
	}
	if code, body := get(auditorKey, "?colour=red"); code != 400 || !strings.Contains(body, "colour") {
		t.Errorf("unknown parameter: %d %s", code, body)
	}
}
