package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/report"
)

func TestCriteriaRefusedWithTheField(t *testing.T) {
	for _, tc := range []struct{ doc, field string }{
		{`{"from":"2024-03-01T00:00:00Z"}`, "criteria.to"},
		{`{"to":"2024-03-01T00:00:00Z"}`, "criteria.from"},
		{`{"from":"2024-03-02T00:00:00Z","to":"2024-03-01T00:00:00Z"}`, "criteria.from"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-01T00:00:00Z"}`, "criteria.from"},
		{`{"from":"2024-03-01","to":"2024-03-02T00:00:00Z"}`, "criteria.from"},
		{`{"from":"2023-01-01T00:00:00Z","to":"2024-03-02T00:00:00Z"}`, "longer than the limit of 400 days"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","actions":["fhir.*.read"]}`, "criteria.actions[0]"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","statuses":["ok"]}`, "criteria.statuses[0]"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","dataClassifications":["phi"]}`, "criteria.dataClassifications[0]"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","organizationIds":[""]}`, "criteria.organizationIds[0]"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","organizationIds":["*"]}`, "criteria.organizationIds[0]"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","dateRange":{}}`, `unknown field "dateRange"`},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","highVolumeAccessThreshold":0}`, "criteria.highVolumeAccessThreshold"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z","principalIds":"alice"}`, "principalIds"},
		{`{"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z"} {}`, "one JSON object"},
	} {
		_, err := report.ParseCriteria([]byte(tc.doc), 0)
		if audit.ErrorCode(err) != audit.CodeInvalid || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v, want invalid naming %s", tc.doc, err, tc.field)
		}
	}
	c, err := report.ParseCriteria([]byte(`{"organizationIds":["org-a"],"from":"2024-03-01T00:00:00-05:00",
		"to":"2024-04-01T00:00:00-04:00","actions":["fhir.*","auth.login"],"statuses":["failure"]}`), 0)
	if err != nil || c.Threshold() != 100 || !c.From.Equal(time.Date(2024, 3, 1, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("valid criteria: %+v, %v", c, err)
	}
	if _, err := report.ParseType("audit"); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Errorf("unknown report type: %v", err)
	}
}

// fixtureReport stores the fixture in SQLite and makes one report of it.
func fixtureReport(t *testing.T, typ report.Type) (*report.Generator, *report.Report) {
	t.Helper()
	s, _ := teststores.SQLite(t)
	f := storetest.LoadFixture(t)
	f.Store(t, s)
	g := f.Generator(s)
	r, err := g.Generate(context.Background(), f.Request(t, typ))
	if err != nil {
		t.Fatal(err)
	}
	return g, r
}

func TestJSONCarriesTheNumbersAndTheListedEvents(t *testing.T) {
	g, r := fixtureReport(t, report.GDPR)
	var buf bytes.Buffer
	if err := g.WriteJSON(context.Background(), &buf, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Metadata     report.Metadata     `json:"metadata"`
		GDPR         report.GDPRSpecific `json:"gdprSpecific"`
		ListedEvents report.Listing      `json:"listedEvents"`
		Events       []map[string]any    `json:"events"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%.500s", err, buf.String())
	}
	if doc.GDPR.PersonalDataEvents != 234 || len(doc.Events) != 26 || doc.ListedEvents.Total != 26 ||
		doc.Metadata.ReportType != report.GDPR || len(doc.Metadata.Definitions) == 0 {
		t.Errorf("personal data %d, %d events listed of %d, metadata %+v", doc.GDPR.PersonalDataEvents,
			len(doc.Events), doc.ListedEvents.Total, doc.Metadata)
	}
	if doc.Events[0]["recordHash"] == nil || doc.Events[0]["action"] == nil {
		t.Errorf("listed events are not rendered as the API renders events: %v", doc.Events[0])
	}
}

func TestCSVHasTheTablesThenTheEventsWithTheFormulaGuard(t *testing.T) {
	g, r := fixtureReport(t, report.General)
	r.Metadata.GeneratedBy = "=HYPERLINK(\"http://evil\")" // a cell a spreadsheet would run
	var buf bytes.Buffer
	if err := g.WriteCSV(context.Background(), &buf, r); err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(&buf)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	var sawTop, sawGuard, sawEvents bool
	events := 0
	for i, row := range rows {
		switch {
		case row[0] == "# Top principals" && rows[i+2][0] == "dr-adams" && rows[i+2][1] == "137":
			sawTop = true
		case row[0] == "generatedBy" && row[1] == "'=HYPERLINK(\"http://evil\")":
			sawGuard = true
		case strings.HasPrefix(row[0], "# Listed events"):
			sawEvents = true
		case sawEvents && row[0] != "ID":
			events++
		}
	}
	if !sawTop || !sawGuard || !sawEvents || events != 19 {
		t.Errorf("top table %v, formula guard %v, events section %v with %d rows (want 19)\n%.800s", sawTop, sawGuard, sawEvents, events, text)
	}
}

// pdfText extracts a PDF's text with pdftotext (poppler-utils).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		testenv.Unavailable(t, "pdftotext", "apt-get install -y poppler-utils", err)
	}
	path := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", path, "-").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pdftotext: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return string(out)
}

func TestPDFIsARealDocumentWhoseTextReadsBack(t *testing.T) {
	g, r := fixtureReport(t, report.HIPAA)
	var buf bytes.Buffer
	if err := g.WritePDF(context.Background(), &buf, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatalf("not a PDF: %.20q", buf.Bytes())
	}
	text := pdfText(t, buf.Bytes())
	for _, want := range []string{
		"HIPAA audit trail report", r.Metadata.ReportID, "Definitions version: " + report.DefinitionsVersion,
		"Total events: 324", "phiAccessEvents", "194", "HIGH_VOLUME_ACCESS", "dr-adams", "Activity over time",
		"Listed events", "fhir.patient.break_glass", "ehr.Break-Glass.read", "2024-03-06 16:00:00", "Patient/p-20",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q", want)
		}
	}
	if os.Getenv("AUDIT_REPORT_PDF_OUT") != "" {
		_ = os.WriteFile(os.Getenv("AUDIT_REPORT_PDF_OUT"), buf.Bytes(), 0o644)
	}
}
