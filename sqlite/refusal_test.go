package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/sqlite"
)

// TestRefusalConformance runs the refused-record contract on fresh database
// files whose audit_log refuses storetest.RefusedPrincipal.
func TestRefusalConformance(t *testing.T) {
	storetest.RunRefusals(t, func(t *testing.T) audit.EventStore {
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
		storetest.RefuseInSQLite(t, path)
		return s
	})
}
