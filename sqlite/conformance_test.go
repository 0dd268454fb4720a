package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/sqlite"
)

// TestConformance runs the suite every audit.EventStore must pass, each subtest
// on its own fresh database file.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.EventStore {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return s
	})
}

// TestAlertConformance runs the audit.AlertStore suite on fresh database files.
func TestAlertConformance(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) audit.AlertStore {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
