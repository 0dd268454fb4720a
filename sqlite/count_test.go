package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/sqlite"
)

func TestCountConformance(t *testing.T) {
	storetest.RunCount(t, func(t *testing.T) storetest.CountStore {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
