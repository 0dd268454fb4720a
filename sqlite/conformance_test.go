package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/sqlite"
)

// openFresh opens a store on a new database file; the file's path too.
func openFresh(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, path
}

func fresh(t *testing.T) *sqlite.Store { s, _ := openFresh(t); return s }

// The conformance suites every store must pass, each subtest on its own
// fresh database file.

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.EventStore { return fresh(t) })
}

func TestAlertConformance(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) audit.AlertStore { return fresh(t) })
}

func TestKeyConformance(t *testing.T) {
	storetest.RunKeys(t, func(t *testing.T) audit.KeyStore { return fresh(t) })
}

func TestSearchConformance(t *testing.T) {
	storetest.RunSearch(t, func(t *testing.T) storetest.SearchStore { return fresh(t) })
}

func TestExportConformance(t *testing.T) {
	storetest.RunExports(t, func(t *testing.T) storetest.ExportSecretStore { return fresh(t) })
}

// TestRefusalConformance runs the refused-record contract on database files
// whose audit_log refuses storetest.RefusedPrincipal.
func TestRefusalConformance(t *testing.T) {
	storetest.RunRefusals(t, func(t *testing.T) audit.EventStore {
		s, path := openFresh(t)
		storetest.RefuseInSQLite(t, path)
		return s
	})
}

func TestReportConformance(t *testing.T) {
	paths := map[storetest.ReportStore]string{}
	storetest.RunReports(t, func(t *testing.T) storetest.ReportStore {
		s, path := openFresh(t)
		paths[s] = path
		return s
	}, func(t *testing.T, s storetest.ReportStore, seq int64, field string) {
		column := map[string]string{"outcome": "outcome_description", "principal": "principal_id"}[field]
		db, err := sql.Open("sqlite", paths[s])
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), `UPDATE audit_log SET `+column+` = 'tampered' WHERE id = ?`, seq); err != nil {
			t.Fatalf("tamper with %d: %v", seq, err)
		}
	})
}

func TestTreeConformance(t *testing.T) {
	storetest.RunTree(t, func(t *testing.T) storetest.TreeStore { return fresh(t) })
}
