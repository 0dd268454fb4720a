package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/notify"
	"github.com/smartlogs/audit-worker/report"
	"github.com/smartlogs/audit-worker/sqlite"
)

// fixtureDataDir writes the fixture into the SQLite store of a new data
// directory and returns a configuration file for it.
func fixtureDataDir(t *testing.T) (configPath, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dataDir, "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	storetest.LoadFixture(t).Store(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := `{"storage":{"dataDir":` + quote(dataDir) + `},"logging":{"level":"error"},"monitoring":{"patternDetection":
		{"organizationTimeZones":{"org-a":"America/New_York"}}},"compliance":{"gdpr":{"controller":"Example Clinic, dpo@example.org"}}}`
	return writeFile(t, "config.json", cfg), dataDir
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestReportCommand(t *testing.T) {
	cfgPath, dir := fixtureDataDir(t)
	out := filepath.Join(dir, "hipaa.json")
	_, err := runCLI(t, "", "--config", cfgPath, "report", "hipaa", "--org", "org-a",
		"--from", "2024-03-01T00:00:00-05:00", "--to", "2024-04-01T00:00:00-04:00", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		HIPAA report.HIPAASpecific `json:"hipaaSpecific"`
	}
	data, _ := os.ReadFile(out)
	if json.Unmarshal(data, &doc) != nil || doc.HIPAA.PHIEvents != 207 || doc.HIPAA.AfterHoursAccessEvents != 6 {
		t.Errorf("hipaa report: %.300s", data)
	}
	stdout, err := runCLI(t, "", "--config", cfgPath, "report", "gdpr", "--org", "org-a",
		"--from", "2024-03-01T00:00:00-05:00", "--to", "2024-04-01T00:00:00-04:00", "--format", "csv")
	if err != nil || !strings.Contains(stdout, "Example Clinic") || !strings.Contains(stdout, "personalDataEvents,234") {
		t.Errorf("gdpr csv: %v\n%.600s", err, stdout)
	}
	for _, bad := range [][]string{
		{"report", "sox", "--org", "org-a", "--from", "2024-03-01T00:00:00Z", "--to", "2024-03-02T00:00:00Z"},
		{"report", "hipaa", "--org", "org-a", "--from", "yesterday", "--to", "2024-03-02T00:00:00Z"},
		{"report", "hipaa", "--org", "org-a", "--from", "2024-03-02T00:00:00Z", "--to", "2024-03-01T00:00:00Z"},
		{"report", "hipaa", "--org", "org-a", "--from", "2024-03-01T00:00:00Z", "--to", "2024-03-02T00:00:00Z", "--format", "xml"},
		{"report", "hipaa", "--from", "2024-03-01T00:00:00Z", "--to", "2024-03-02T00:00:00Z"},
	} {
		if _, err := runCLI(t, "", append([]string{"--config", cfgPath}, bad...)...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	// The two reports were recorded as accesses.
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.SearchEvents(context.Background(), audit.EventQuery{Action: "audit.access.report", Order: audit.OrderAsc, Limit: 10})
	if err != nil || len(recs) != 2 || !strings.HasPrefix(recs[0].PrincipalID, "cli:") || recs[0].OrganizationID != "org-a" {
		t.Errorf("access records: %v %+v", err, recs)
	}
}

// A scheduled report is delivered to S3 (versitygw), to a directory and to
// a signed webhook; each run is recorded with the object's SHA-256.
func TestScheduledReportsAreDelivered(t *testing.T) {
	endpoint, bucket, ak, sk := testenv.S3(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", ak)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	t.Setenv("AWS_REGION", testenv.S3Region)
	var mu sync.Mutex
	var hooked [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify("webhook-secret-0123456789", r.Header.Get(notify.HeaderTimestamp), body,
			r.Header.Get(notify.HeaderSignature), 0, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		hooked = append(hooked, body)
		mu.Unlock()
	}))
	defer hook.Close()
	cfgPath, dir := fixtureDataDir(t)
	base, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	base.Compliance.Reports = []config.ScheduledReport{
		{Name: "hipaa-monthly", Report: "hipaa", Organizations: []string{"org-a"}, Frequency: "monthly", Format: "pdf",
			Destination: "s3://" + bucket + "/reports/org-a"},
		{Name: "gdpr-daily", Report: "gdpr", Organizations: []string{"org-a"}, Frequency: "daily", Format: "json",
			Destination: filepath.Join(dir, "out")},
		{Name: "general-weekly", Report: "general", Organizations: []string{"*"}, Frequency: "weekly", Format: "csv",
			Destination: hook.URL + "/reports", Secret: "webhook-secret-0123456789"},
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	schedules, err := reportSchedules(base)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2024, 4, 2, 12, 0, 0, 0, time.UTC)
	sched, err := report.NewScheduler(report.SchedulerOptions{Generator: reportGenerator(base, s), Runs: s, Schedules: schedules,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	runs, err := s.ListRuns(context.Background(), report.RunQuery{Limit: 10})
	if err != nil || len(runs) != 3 {
		t.Fatalf("runs %+v %v", runs, err)
	}
	byName := map[string]report.Run{}
	for _, r := range runs {
		byName[r.Schedule] = r
		if r.Status != report.RunSucceeded || r.SHA256 == "" || r.SizeBytes == nil {
			t.Errorf("run %+v", r)
		}
	}
	// S3: the March report of org-a, in New York's month.
	s3run := byName["hipaa-monthly"]
	key := "reports/org-a/hipaa-monthly-hipaa-20240301T0000-20240401T0000.pdf"
	if s3run.Location != "s3://"+bucket+"/"+key || !s3run.PeriodStart.Equal(time.Date(2024, 3, 1, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("s3 run %+v", s3run)
	}
	obj, err := testenv.NewS3Client(endpoint, ak, sk).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("the report is not in the bucket: %v", err)
	}
	data, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != s3run.SHA256 || !strings.HasPrefix(string(data), "%PDF-") || obj.Metadata["sha256"] != s3run.SHA256 {
		t.Errorf("the object (%d bytes) is not the run's report", len(data))
	}
	t.Logf("delivered %s (%d bytes, sha256 %s)", s3run.Location, len(data), s3run.SHA256)
	// Directory: the GDPR report of 2024-04-01 in New York.
	file, err := os.ReadFile(byName["gdpr-daily"].Location)
	if err != nil || !strings.Contains(string(file), `"reportType":"GDPR_PROCESSING_ACTIVITIES"`) {
		t.Errorf("directory delivery %s: %v", byName["gdpr-daily"].Location, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || !strings.Contains(string(hooked[0]), "# Top principals") {
		t.Errorf("webhook deliveries: %d", len(hooked))
	}
}
