package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/sqlite"
)

// alertsConfig writes a configuration whose SQLite store holds two alerts and
// returns its path and the alerts.
func alertsConfig(t *testing.T) (string, []audit.Alert) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "config-cache.json")) // not in the source tree
	cfg := writeFile(t, "worker.json", fmt.Sprintf(`{"storage":{"dataDir":%q}}`, dir))
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	base := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	var out []audit.Alert
	for i, c := range []audit.AlertCondition{
		{OrganizationID: "org-1", Type: audit.AlertSecurity, Severity: audit.SeverityHigh, DedupKey: "FAILED_AUTH:u-1",
			Title: "Suspicious Pattern Detected: FAILED_AUTH", ObservedAt: base},
		{Type: audit.AlertSystem, Severity: audit.SeverityLow, DedupKey: "QUEUE_BACKLOG",
			Title: "Queue backlog above threshold", ObservedAt: base.Add(time.Hour)},
	} {
		r, err := store.RaiseAlert(context.Background(), c)
		if err != nil {
			t.Fatalf("raise %d: %v", i, err)
		}
		out = append(out, r.Alert)
	}
	return cfg, out
}

func TestAlertsListCommand(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	cfg, alerts := alertsConfig(t)

	out, err := runCLI(t, "", "alerts", "list", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "SEVERITY") {
		t.Fatalf("table:\n%s", out)
	}
	// Newest first: the system alert, then the security one.
	for i, want := range [][]string{
		{alerts[1].ID, "2026-04-01T09:00:00Z", "LOW", "SYSTEM", "active", " 1 ", " - ", "Queue backlog above threshold"},
		{alerts[0].ID, "2026-04-01T08:00:00Z", "HIGH", "SECURITY", "active", "org-1", "FAILED_AUTH"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d lacks %q: %q", i+1, w, lines[i+1])
			}
		}
	}

	out, err = runCLI(t, "", "alerts", "list", "--config", cfg, "--severity", "high,critical", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Alerts     []audit.Alert `json:"alerts"`
		NextCursor string        `json:"nextCursor"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if len(page.Alerts) != 1 || page.Alerts[0].ID != alerts[0].ID || page.NextCursor != "" {
		t.Errorf("filtered json: %+v", page)
	}

	// Paging: one per page, the cursor printed by the table continues.
	out, err = runCLI(t, "", "alerts", "list", "--config", cfg, "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	_, cursor, ok := strings.Cut(out, "more: --cursor ")
	if !ok || !strings.Contains(out, alerts[1].ID) {
		t.Fatalf("first page:\n%s", out)
	}
	out, err = runCLI(t, "", "alerts", "list", "--config", cfg, "--limit", "1", "--cursor", strings.TrimSpace(cursor))
	if err != nil || !strings.Contains(out, alerts[0].ID) || strings.Contains(out, "more:") {
		t.Errorf("second page (%v):\n%s", err, out)
	}

	for _, args := range [][]string{
		{"--status", "open"}, {"--since", "yesterday"}, {"--limit", "0"}, {"--output", "yaml"},
	} {
		if _, err := runCLI(t, "", append([]string{"alerts", "list", "--config", cfg}, args...)...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestAlertsTransitionCommands(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	t.Setenv("USER", "operator-from-env")
	cfg, alerts := alertsConfig(t)
	sec, sys := alerts[0].ID, alerts[1].ID

	out, err := runCLI(t, "", "alerts", "ack", sec, "--config", cfg, "--note", "looking into it")
	if err != nil || !strings.Contains(out, sec+" is now acknowledged (by operator-from-env)") {
		t.Fatalf("ack: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "alerts", "resolve", sec, "--config", cfg, "--by", "alice", "--note", "password reset", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var a audit.Alert
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if a.Status != audit.AlertResolved || a.ResolvedBy != "alice" || a.AcknowledgedBy != "operator-from-env" || a.StatusNote != "password reset" {
		t.Errorf("resolved alert: %+v", a)
	}
	if _, err := runCLI(t, "", "alerts", "dismiss", sec, "--config", cfg); audit.ErrorCode(err) != audit.CodeConflict {
		t.Errorf("dismissing a resolved alert: %v", err)
	}
	if _, err := runCLI(t, "", "alerts", "dismiss", "alt_unknown", "--config", cfg); audit.ErrorCode(err) != audit.CodeNotFound {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := runCLI(t, "", "alerts", "dismiss", sys, "--config", cfg, "--by", ""); err == nil {
		t.Error("empty --by accepted")
	}
	if _, err := runCLI(t, "", "alerts", "dismiss", sys, "--config", cfg, "--by", "bob"); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "", "alerts", "list", "--config", cfg, "--status", "resolved,dismissed", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, `"id"`) != 2 || !strings.Contains(out, `"status": "dismissed"`) {
		t.Errorf("after the changes:\n%s", out)
	}
}
