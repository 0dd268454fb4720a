package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to change rows behind the store's back

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/export"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
)

const eventsCLIKey = "events-cli-test-hmac-key-0123456789abcdef"

// eventsCLI is a configuration whose store holds generated events, and a
// connection of the test's own to that store.
type eventsCLI struct {
	config string
	store  cliStore
	tamper func(t *testing.T, seq int64, column, value string)
}

// newEventsCLI writes a configuration for the kind of store ("sqlite" or
// "postgres") and stores n signed events of the last two hours in it.
func newEventsCLI(t *testing.T, kind string, n int) *eventsCLI {
	t.Helper()
	t.Setenv("CONFIG_PATH", "")
	dir := t.TempDir()
	t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "config-cache.json"))
	cfg := map[string]any{"storage": map[string]any{"dataDir": dir}, "security": map[string]any{"encryptionKey": eventsCLIKey},
		"logging": map[string]any{"level": "warn"}}
	c := &eventsCLI{}
	ctx := context.Background()
	switch kind {
	case "sqlite":
		path := filepath.Join(dir, "audit.db")
		s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		c.store = s
		c.tamper = func(t *testing.T, seq int64, column, value string) {
			t.Helper()
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`UPDATE audit_log SET `+column+` = ? WHERE id = ?`, value, seq); err != nil {
				t.Fatal(err)
			}
		}
	case "postgres":
		url := testenv.PostgresDatabase(t)
		cfg["enhancedClient"] = map[string]any{"connectionString": url}
		s, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		c.store = s
		c.tamper = func(t *testing.T, seq int64, column, value string) {
			t.Helper()
			if _, err := s.Pool().Exec(t.Context(), `UPDATE audit_log SET `+column+` = $1 WHERE id = $2`, value, seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { c.store.Close() })
	c.config = filepath.Join(dir, "worker.json")
	writeJSONFile(t, c.config, cfg)
	g := eventgen.New(31)
	g.HMACKey = []byte(eventsCLIKey)
	g.Start = time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	recs := g.Records(n, "events-cli-test")
	for i := 0; i < len(recs); i += 1000 {
		if _, err := c.store.StoreBatch(ctx, audit.Batch{Records: recs[i:min(i+1000, len(recs))]}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// run runs the CLI with the configuration and returns stdout and stderr.
func (c *eventsCLI) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand()
	cmd.SetArgs(append(args, "--config", c.config))
	cmd.SetIn(strings.NewReader(""))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// search is what the store answers to q, page by page: the expected result.
func (c *eventsCLI) search(t *testing.T, q audit.EventQuery) []audit.StoredEvent {
	t.Helper()
	if q.Order == "" {
		q.Order = audit.OrderDesc
	}
	if q.Since.IsZero() {
		q.Since = time.Now().Add(-defaultSearchWindow)
	}
	q.Limit = 1000
	var all []audit.StoredEvent
	for {
		events, err := c.store.SearchEvents(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, events...)
		if len(events) < q.Limit {
			return all
		}
		last := audit.PositionOf(&events[len(events)-1])
		q.After = &last
	}
}

// accessRecords are the CLI's access records with this action.
func (c *eventsCLI) accessRecords(t *testing.T, action string) []audit.StoredEvent {
	t.Helper()
	var out []audit.StoredEvent
	for _, e := range c.search(t, audit.EventQuery{Action: action}) {
		if strings.HasPrefix(e.PrincipalID, "cli:") && bytes.Contains(e.Details, []byte(`"via":"audit-worker CLI"`)) {
			out = append(out, e)
		}
	}
	return out
}

func ndjsonOf(events []audit.StoredEvent) []byte {
	var b []byte
	for i := range events {
		b = append(export.AppendEvent(b, &events[i]), '\n')
	}
	return b
}

func TestEventsQueryCommand(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 2300)

	// The table: newest first, 100 by default, and a note that more match.
	want := c.search(t, audit.EventQuery{})[:100]
	out, notes, err := c.run(t, "events", "query")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 101 || strings.Join(strings.Fields(lines[0]), " ") != "ID TIMESTAMP ORG PRINCIPAL ACTION STATUS TARGET" {
		t.Fatalf("%d lines, header %q", len(lines), lines[0])
	}
	for i, e := range want {
		fields := strings.Fields(lines[i+1])
		wantFields := []string{strconv.FormatInt(e.Seq, 10), e.Timestamp, e.OrganizationID, e.PrincipalID, e.Action,
			string(e.Status), e.TargetResourceType + "/" + e.TargetResourceID}
		if !slices.Equal(fields, wantFields) {
			t.Fatalf("row %d: %q, want %q", i, fields, wantFields)
		}
	}
	if !strings.Contains(notes, "more than 100 events match") {
		t.Errorf("stderr %q: no note that more events match", notes)
	}
	if recs := c.accessRecords(t, "audit.access.query"); len(recs) == 0 {
		t.Error("the query left no access record")
	}

	// NDJSON with filters: the API's rendering, byte for byte.
	q := audit.EventQuery{Organizations: []string{"org-001", "org-002"}, Action: "fhir.*", Status: audit.StatusSuccess}
	want = c.search(t, q)
	if len(want) == 0 {
		t.Fatal("the filters match nothing; the case tests nothing")
	}
	out, _, err = c.run(t, "events", "query", "--org", "org-001,org-002", "--action", "fhir.*", "--status", "success",
		"--output", "ndjson")
	if err != nil || out != string(ndjsonOf(want)) {
		t.Errorf("ndjson (%v):\n%s\nwant\n%s", err, out, ndjsonOf(want))
	}

	// --all reads past one page (2,000 events); json is an array of the same renderings.
	want = c.search(t, audit.EventQuery{Order: audit.OrderAsc})
	out, _, err = c.run(t, "events", "query", "--all", "--order", "asc", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var array []json.RawMessage
	if err := json.Unmarshal([]byte(out), &array); err != nil {
		t.Fatalf("json output: %v", err)
	}
	if len(array) != len(want) || len(want) <= queryPageSize {
		t.Fatalf("--all: %d events, want %d (more than a page of %d)", len(array), len(want), queryPageSize)
	}
	for i := range want {
		if string(array[i]) != string(export.AppendEvent(nil, &want[i])) {
			t.Fatalf("event %d: %s\nwant %s", i, array[i], export.AppendEvent(nil, &want[i]))
		}
	}

	// --limit, in ascending order; an empty result is an empty array.
	out, _, err = c.run(t, "events", "query", "--limit", "3", "--order", "asc", "--output", "ndjson")
	if err != nil || out != string(ndjsonOf(want[:3])) {
		t.Errorf("--limit 3 --order asc (%v):\n%s", err, out)
	}
	out, _, err = c.run(t, "events", "query", "--principal", "nobody", "--output", "json")
	if err != nil || out != "[]\n" {
		t.Errorf("no match as json (%v): %q", err, out)
	}
}

// A value a producer sent reaches the terminal escaped: no control
// character of it is printed as such.
func TestEventsQueryTableEscapesControlCharacters(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 0)
	g := eventgen.New(5)
	f := g.Fields()
	f["principalId"] = "evil\x1b]0;owned\x07\ttab\u202eRLO"
	ev, _, err := audit.ParseEvent(g.Seal(f), audit.DefaultRules(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := audit.NewRecord(ev, "escape-test", "events-cli-test", audit.IntegrityResult{HashStatus: audit.HashVerified}, time.Now())
	if _, err := c.store.StoreBatch(t.Context(), audit.Batch{Records: []audit.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	out, _, err := c.run(t, "events", "query")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\x07\u202e") || strings.Count(out, "\t") > 0 {
		t.Errorf("control characters reach the terminal: %q", out)
	}
	if !strings.Contains(out, `"evil\x1b]0;owned\a\ttab\u202eRLO"`) {
		t.Errorf("the principal is not shown escaped: %q", out)
	}
}

func TestEventsQueryRefusesBadFlags(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 0)
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--status", "maybe"}, "--status"},
		{[]string{"--classification", "SECRET"}, "--classification"},
		{[]string{"--order", "sideways"}, "--order"},
		{[]string{"--action", "a*b"}, "--action"},
		{[]string{"--action", "*"}, "--action"},
		{[]string{"--since", "yesterday"}, "--since"},
		{[]string{"--until", "2026-13-01T00:00:00Z"}, "--until"},
		{[]string{"--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}, "--until"},
		{[]string{"--limit", "0"}, "--limit"},
		{[]string{"--limit", "10001"}, "--limit"},
		{[]string{"--limit", "5", "--all"}, "limit"},
		{[]string{"--output", "yaml"}, "--output"},
		{[]string{"--principal", "a\x00b"}, "--principal"},
		{[]string{"--org", "org\x00a"}, "--org"},
		{[]string{"--ip", strings.Repeat("1", 2000)}, "--ip"},
		{[]string{"--session", "\xff"}, "--session"},
	} {
		out, _, err := c.run(t, append([]string{"events", "query"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%q: err %v, want one naming %s", tc.args, err, tc.flag)
		}
		if out != "" {
			t.Errorf("%q printed %q", tc.args, out)
		}
	}
}

func TestEventsShowCommand(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 20)
	e := c.search(t, audit.EventQuery{})[4]
	out, _, err := c.run(t, "events", "show", strconv.FormatInt(e.Seq, 10))
	if want := string(export.AppendEvent(nil, &e)) + "\n"; err != nil || out != want {
		t.Errorf("show (%v):\n%s\nwant\n%s", err, out, want)
	}
	if recs := c.accessRecords(t, "audit.access.query"); len(recs) != 1 || recs[0].TargetResourceID != strconv.FormatInt(e.Seq, 10) {
		t.Errorf("access records %+v, want one for event %d", recs, e.Seq)
	}
	if _, _, err := c.run(t, "events", "show", "99999"); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Errorf("missing event: %v", err)
	}
	for _, bad := range []string{"abc", "0", "1.5"} {
		if _, _, err := c.run(t, "events", "show", bad); audit.ErrorCode(err) != audit.CodeInvalid || !strings.Contains(err.Error(), "ID") {
			t.Errorf("show %s: %v", bad, err)
		}
	}
}

func TestEventsVerifyCommand(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 20)
	events := c.search(t, audit.EventQuery{})
	fresh, detailsChanged, actionChanged := events[0].Seq, events[1].Seq, events[2].Seq

	out, _, err := c.run(t, "events", "verify", strconv.FormatInt(fresh, 10))
	if err != nil {
		t.Fatalf("fresh event: %v\n%s", err, out)
	}
	for _, check := range []string{audit.CheckProducerHash, audit.CheckSignature, audit.CheckRecordHash} {
		if !regexpLine(out, check, "ok") {
			t.Errorf("table lacks %s ok:\n%s", check, out)
		}
	}
	if !strings.Contains(out, events[0].RecordHash) || !strings.Contains(out, events[0].Hash) {
		t.Errorf("the table does not show the hashes in full:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("event %d: verified\n", fresh)) {
		t.Errorf("no verdict:\n%s", out)
	}

	c.tamper(t, detailsChanged, "details", `{"changed":true}`)
	c.tamper(t, actionChanged, "action", "auth.logout")
	for _, tc := range []struct {
		seq    int64
		failed []string
	}{
		{detailsChanged, []string{audit.CheckRecordHash}},
		{actionChanged, []string{audit.CheckProducerHash, audit.CheckSignature, audit.CheckRecordHash}},
	} {
		id := strconv.FormatInt(tc.seq, 10)
		out, _, err := c.run(t, "events", "verify", id)
		if audit.ErrorCode(err) != audit.CodeIntegrity || !strings.Contains(err.Error(), strings.Join(tc.failed, ", ")+" failed") {
			t.Errorf("event %d: err %v, want an integrity error naming %v", tc.seq, err, tc.failed)
		}
		for _, name := range tc.failed {
			if !regexpLine(out, name, "FAILED") {
				t.Errorf("event %d: table lacks %s FAILED:\n%s", tc.seq, name, out)
			}
		}
		out, _, err = c.run(t, "events", "verify", id, "--output", "json")
		var v eventVerification
		if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || err == nil || v.Verified || v.ID != tc.seq {
			t.Errorf("event %d as json (%v, %v): %s", tc.seq, err, jerr, out)
		}
	}
	recs := c.accessRecords(t, "audit.access.verify")
	if len(recs) != 5 {
		t.Errorf("%d verify access records, want 5", len(recs))
	}
	if _, _, err := c.run(t, "events", "verify", "1", "--output", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Errorf("--output yaml: %v", err)
	}
}

// regexpLine reports whether a line of out starts with name and holds word.
func regexpLine(out, name, word string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == name && f[1] == word {
			return true
		}
	}
	return false
}

func TestEventsHashStillWorks(t *testing.T) {
	event := `{"timestamp":"2023-10-26T10:30:00.000Z","action":"userLogin","status":"success","principalId":"user-12345"}`
	a, err := runCLI(t, event, "event", "hash", "--hmac-key", "k")
	b, err2 := runCLI(t, event, "events", "hash", "--hmac-key", "k")
	if err != nil || err2 != nil || a != b || !strings.Contains(a, `"hash":"`) || !strings.Contains(a, `"signature":"`) {
		t.Errorf("event hash %q (%v), events hash %q (%v)", a, err, b, err2)
	}
}

func TestEventsExportCommand(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			c := newEventsCLI(t, kind, 2500)
			dir := t.TempDir()
			filters := []string{"--action", "fhir.*"}
			q := audit.EventQuery{Action: "fhir.*"}
			for _, tc := range []struct {
				format string
				gzip   bool
			}{{"ndjson", false}, {"csv", false}, {"json", false}, {"ndjson", true}} {
				name := "export." + tc.format
				args := append([]string{"events", "export", "--format", tc.format, "--out", filepath.Join(dir, name)}, filters...)
				if tc.gzip {
					name += ".gz"
					args[5] += ".gz"
					args = append(args, "--gzip")
				}
				want := c.search(t, q)
				out, _, err := c.run(t, args...)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				path := filepath.Join(dir, name)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				checkExportContent(t, name, data, tc.format, tc.gzip, want)
				m := checkExportSidecars(t, path, data)
				if m.RowCount != int64(len(want)) || m.FirstID != want[0].Seq || m.LastID != want[len(want)-1].Seq ||
					m.Format != tc.format || m.Gzip != tc.gzip || !m.Complete || !strings.HasPrefix(m.Caller, "cli:") ||
					!slices.Equal(m.Filters["action"], []string{"fhir.*"}) || m.From == nil {
					t.Errorf("%s: manifest %+v; want %d rows from %d to %d", name, m, len(want), want[0].Seq, want[len(want)-1].Seq)
				}
				kept, err := c.store.GetExport(t.Context(), m.ID)
				if err != nil || kept.SHA256 != m.SHA256 || kept.RowCount != m.RowCount || !kept.Complete {
					t.Errorf("%s: manifest kept in the store %+v (%v), want %+v", name, kept, err, m)
				}
				if !strings.HasPrefix(out, fmt.Sprintf("exported %s events to %s", groupDigits(m.RowCount), path)) || strings.Count(out, "\n") != 1 {
					t.Errorf("%s: summary %q", name, out)
				}
				recs := c.accessRecords(t, "audit.access.export")
				if len(recs) == 0 || recs[0].TargetResourceID != m.ID {
					t.Errorf("%s: no access record of export %s", name, m.ID)
				}
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".partial") {
					t.Errorf("temporary file left: %s", e.Name())
				}
			}
			if len(entries) != 12 {
				t.Errorf("%d files in the export directory, want 4 exports with 2 side files each", len(entries))
			}
		})
	}
}

// checkExportContent compares an exported file with the events it must hold.
func checkExportContent(t *testing.T, name string, data []byte, format string, gz bool, want []audit.StoredEvent) {
	t.Helper()
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	switch format {
	case "ndjson":
		if !bytes.Equal(data, ndjsonOf(want)) {
			t.Errorf("%s: differs from the events (%d vs %d bytes)", name, len(data), len(ndjsonOf(want)))
		}
	case "csv":
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want)+1 || !slices.Equal(rows[0], export.CSVHeader) {
			t.Fatalf("%s: %d rows, want %d and the header", name, len(rows), len(want)+1)
		}
		for i := range want {
			if !slices.Equal(rows[i+1], export.CSVRecord(nil, &want[i])) {
				t.Fatalf("%s: row %d %q", name, i, rows[i+1])
			}
		}
	case "json":
		var events []json.RawMessage
		if err := json.Unmarshal(data, &events); err != nil || len(events) != len(want) {
			t.Fatalf("%s: %d events (%v), want %d", name, len(events), err, len(want))
		}
		for i := range want {
			if string(events[i]) != string(export.AppendEvent(nil, &want[i])) {
				t.Fatalf("%s: event %d differs", name, i)
			}
		}
	}
}

// checkExportSidecars checks FILE.sha256 (with sha256sum -c when it is
// installed) and returns FILE.manifest.json, checked against the file.
func checkExportSidecars(t *testing.T, path string, data []byte) audit.ExportManifest {
	t.Helper()
	sum := sha256.Sum256(data)
	line, err := os.ReadFile(path + ".sha256")
	if want := hex.EncodeToString(sum[:]) + "  " + filepath.Base(path) + "\n"; err != nil || string(line) != want {
		t.Errorf("%s.sha256: %q (%v), want %q", path, line, err, want)
	}
	if bin, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(bin, "-c", filepath.Base(path)+".sha256")
		cmd.Dir = filepath.Dir(path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
	raw, err := os.ReadFile(path + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m audit.ExportManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.Bytes != int64(len(data)) {
		t.Errorf("%s: manifest says %d bytes with SHA-256 %s; the file has %d bytes with %x", path, m.Bytes, m.SHA256, len(data), sum)
	}
	for _, name := range []string{path, path + ".sha256", path + ".manifest.json"} {
		if st, err := os.Stat(name); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600: exports hold personal data", name, st.Mode().Perm(), err)
		}
	}
	return m
}

func TestEventsExportRefusesToOverwrite(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 10)
	path := filepath.Join(t.TempDir(), "out.ndjson")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run(t, "events", "export", "--out", path); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("existing file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "keep me" {
		t.Errorf("the existing file was changed: %q", data)
	}
	if _, _, err := c.run(t, "events", "export", "--out", path, "--force"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); bytes.Count(data, []byte("\n")) != 10 {
		t.Errorf("--force: %d lines, want the 10 events", bytes.Count(data, []byte("\n")))
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--out", path, "--force", "--format", "xml"}, "--format"},
		{[]string{"--out", filepath.Join(t.TempDir(), "missing", "out.csv")}, "--out"},
		{[]string{"--out", t.TempDir() + "/"}, "--out"},
		{[]string{}, "out"},
		{[]string{"--out", path, "--force", "--status", "maybe"}, "--status"},
	} {
		if _, _, err := c.run(t, append([]string{"events", "export"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%q: err %v, want one naming %s", tc.args, err, tc.flag)
		}
	}
}

// failingReader fails after its first page, as a store that goes away.
type failingReader struct {
	audit.EventReader
	calls int
}

func (f *failingReader) SearchEvents(ctx context.Context, q audit.EventQuery) ([]audit.StoredEvent, error) {
	if f.calls++; f.calls > 1 {
		return nil, audit.Errorf(audit.CodeUnavailable, "store went away")
	}
	return f.EventReader.SearchEvents(ctx, q)
}

// An export that stops half-way leaves no file under its name, no
// temporary file, and an existing file as it was.
func TestWriteExportFileLeavesNoHalfFile(t *testing.T) {
	c := newEventsCLI(t, "sqlite", export.BatchSize+10)
	dir := t.TempDir()
	path := filepath.Join(dir, "out.ndjson")
	q := audit.EventQuery{Order: audit.OrderDesc, Since: time.Now().Add(-time.Hour * 24)}
	for _, existing := range []bool{false, true} {
		if existing {
			if err := os.WriteFile(path, []byte("previous export"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		res, err := writeExportFile(t.Context(), &failingReader{EventReader: c.store}, q,
			exportOptions{format: export.NDJSON, path: path}, nil)
		if !audit.IsTransient(err) || res.Rows != export.BatchSize {
			t.Errorf("err %v after %d rows; want the store's error after a page", err, res.Rows)
		}
		entries, _ := os.ReadDir(dir)
		data, statErr := os.ReadFile(path)
		switch {
		case !existing && (statErr == nil || len(entries) != 0):
			t.Errorf("a failed export left %d files", len(entries))
		case existing && (string(data) != "previous export" || len(entries) != 1):
			t.Errorf("a failed export changed the existing file (%q) or left %d files", data, len(entries))
		}
	}
}

// cancellingStore cancels the command's context once its first page is read,
// as an operator's Ctrl-C would.
type cancellingStore struct {
	cliStore
	cancel context.CancelFunc
}

func (s cancellingStore) SearchEvents(ctx context.Context, q audit.EventQuery) ([]audit.StoredEvent, error) {
	events, err := s.cliStore.SearchEvents(ctx, q)
	s.cancel()
	return events, err
}

// An interrupted export writes no file, says so, and still keeps its
// manifest (incomplete) and its access record.
func TestEventsExportInterrupted(t *testing.T) {
	c := newEventsCLI(t, "sqlite", export.BatchSize+10)
	path := filepath.Join(t.TempDir(), "out.ndjson")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := &cobra.Command{}
	cmd.SetContext(ctx)
	cmd.SetErr(io.Discard)
	var out bytes.Buffer
	err := withStore(cmd, c.config, func(ctx context.Context, env *cliEnv) error {
		env.store = cancellingStore{cliStore: env.store, cancel: cancel}
		q := audit.EventQuery{Order: audit.OrderDesc, Since: time.Now().Add(-24 * time.Hour)}
		return exportEvents(ctx, env, q, map[string][]string{}, exportOptions{format: export.NDJSON, path: path}, &out, io.Discard)
	})
	if err == nil || !strings.Contains(err.Error(), "export interrupted after 2000 events; "+path+" was not written") {
		t.Fatalf("err %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 || out.Len() != 0 {
		t.Errorf("an interrupted export left %d files and printed %q", len(entries), out.String())
	}
	recs := c.accessRecords(t, "audit.access.export")
	if len(recs) != 1 || recs[0].Status != audit.StatusFailure || !strings.Contains(recs[0].OutcomeDescription, "stopped after 2000 events") {
		t.Fatalf("access records %+v", recs)
	}
	m, err := c.store.GetExport(t.Context(), recs[0].TargetResourceID)
	if err != nil || m.Complete || m.RowCount != 2000 || m.Error == "" {
		t.Errorf("kept manifest %+v (%v), want an incomplete one of 2000 rows", m, err)
	}
}

func TestExportProgress(t *testing.T) {
	for _, tc := range []struct {
		rows, total int64
		elapsed     time.Duration
		want        string
	}{
		{120_000, 1_000_000, 3 * time.Second, "120,000 / 1,000,000 rows (12%), 40,000 rows/s, 22s left"},
		{120_000, -1, 3 * time.Second, "120,000 rows, 40,000 rows/s"},
		{0, 0, 0, "0 / 0 rows (100%), 0 rows/s"},
		{1500, 1000, time.Second, "1,500 / 1,500 rows (100%), 1,500 rows/s, 0s left"}, // rows stored after the count
	} {
		if got := progressLine(tc.rows, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%d, %d, %s) = %q, want %q", tc.rows, tc.total, tc.elapsed, got, tc.want)
		}
	}

	var out bytes.Buffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newExportProgress(&out, true, func() int64 { return 10_000 })
	p.now = func() time.Time { return clock }
	p.start = clock
	for i := range int64(5) {
		clock = clock.Add(100 * time.Millisecond)
		p.update((i + 1) * 1000)
	}
	p.done()
	// Redrawn at most every 250 ms: at 100 ms, then 400 ms.
	const redraw = "\r\x1b[K"
	if got := strings.Count(out.String(), redraw); got != 3 || !strings.HasSuffix(out.String(), redraw) ||
		!strings.Contains(out.String(), "1,000 / 10,000 rows (10%), 10,000 rows/s, 1s left") {
		t.Errorf("terminal progress %q", out.String())
	}

	out.Reset()
	p = newExportProgress(&out, false, func() int64 { return -1 })
	p.update(1000)
	p.done()
	if out.Len() != 0 {
		t.Errorf("progress on a file or pipe: %q", out.String())
	}
}

func TestCountInBackground(t *testing.T) {
	c := newEventsCLI(t, "sqlite", 50)
	q := audit.EventQuery{Since: time.Now().Add(-24 * time.Hour)}
	n := countInBackground(t.Context(), c.store, q)
	testenv.Eventually(t, 5*time.Second, "the count", func() bool { return n.get() == 50 })
	n.stop()
	// A store that cannot count gives no total.
	n = countInBackground(t.Context(), struct{ audit.EventReader }{c.store}, q)
	n.stop()
	if n.get() != -1 {
		t.Errorf("count %d from a reader that cannot count", n.get())
	}
}

// searchPage tells whether more events match than it returns, up to pages
// of the store's largest size.
func TestSearchPage(t *testing.T) {
	c := newEventsCLI(t, "sqlite", audit.MaxQueryLimit+1)
	all := c.search(t, audit.EventQuery{Order: audit.OrderAsc})
	since := time.Now().Add(-24 * time.Hour)
	for _, tc := range []struct {
		name  string
		until time.Time // zero: every event
		limit int
		rows  int
		more  bool
	}{
		{"every event, largest page", time.Time{}, audit.MaxQueryLimit, audit.MaxQueryLimit, true},
		{"exactly a largest page", all[audit.MaxQueryLimit].Time, audit.MaxQueryLimit, audit.MaxQueryLimit, false},
		{"fewer than the limit", all[4].Time, 5, 4, false},
		{"exactly the limit", all[5].Time, 5, 5, false},
		{"one more than the limit", all[6].Time, 5, 5, true},
	} {
		q := audit.EventQuery{Order: audit.OrderAsc, Since: since, Until: tc.until}
		events, more, err := searchPage(t.Context(), c.store, q, tc.limit)
		if err != nil || len(events) != tc.rows || more != tc.more || events[0].Seq != all[0].Seq {
			t.Errorf("%s: %d events, more %v (%v); want %d, %v", tc.name, len(events), more, err, tc.rows, tc.more)
		}
	}
}

func TestEventFiltersWindow(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	at := time.Date(2026, 3, 1, 8, 0, 0, 123_456_000, time.UTC)
	for _, tc := range []struct {
		since, until         string
		wantSince, wantUntil time.Time
		err                  string
	}{
		{"", "", now.Add(-30 * 24 * time.Hour), time.Time{}, ""},
		{"36h", "", now.Add(-36 * time.Hour), time.Time{}, ""},
		{"7d", "1h", now.Add(-7 * 24 * time.Hour), now.Add(-time.Hour), ""},
		{at.Format(time.RFC3339Nano), "", at, time.Time{}, ""},
		// kept to the nanosecond: EventQuery.Bounds raises it to the next stored microsecond
		{"2026-03-01T08:00:00.1234565Z", "2026-03-01T12:00:00.0000001+02:00", at.Add(500 * time.Nanosecond),
			time.Date(2026, 3, 1, 10, 0, 0, 100, time.UTC), ""},
		{"1h", "2h", time.Time{}, time.Time{}, "--until: must be after --since"},
		{"0d", "", time.Time{}, time.Time{}, "--since"},
		{"", "soon", time.Time{}, time.Time{}, "--until"},
	} {
		f := eventFilters{since: tc.since, until: tc.until}
		since, until, err := f.window(now)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("since %q until %q: err %v, want %q", tc.since, tc.until, err, tc.err)
		case tc.err == "" && (err != nil || !since.Equal(tc.wantSince) || !until.Equal(tc.wantUntil)):
			t.Errorf("since %q until %q: [%s, %s) %v; want [%s, %s)", tc.since, tc.until, since, until, err, tc.wantSince, tc.wantUntil)
		}
	}
}
