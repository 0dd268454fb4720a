package postgres

import (
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
)

func TestKeyConformance(t *testing.T) {
	storetest.RunKeys(t, func(t *testing.T) audit.KeyStore { return openTest(t, insertCopy) })
}

func TestSearchConformance(t *testing.T) {
	storetest.RunSearch(t, func(t *testing.T) storetest.SearchStore { return openTest(t, insertCopy) })
}

func TestExportConformance(t *testing.T) {
	storetest.RunExports(t, func(t *testing.T) storetest.ExportSecretStore { return openTest(t, insertCopy) })
}

func TestReportConformance(t *testing.T) {
	storetest.RunReports(t, func(t *testing.T) storetest.ReportStore { return openTest(t, insertCopy) },
		func(t *testing.T, s storetest.ReportStore, seq int64, field string) {
			column := map[string]string{"outcome": "outcome_description", "principal": "principal_id"}[field]
			if _, err := s.(*Store).pool.Exec(t.Context(), `UPDATE audit_log SET `+column+` = 'tampered' WHERE id = $1`, seq); err != nil {
				t.Fatalf("tamper with %d: %v", seq, err)
			}
		})
}

func TestTreeConformance(t *testing.T) {
	storetest.RunTree(t, func(t *testing.T) storetest.TreeStore { return openTest(t, insertCopy) })
}
