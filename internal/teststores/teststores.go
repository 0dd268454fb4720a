// Package teststores opens the real stores for tests of the packages above
// them (pipeline, httpapi, queueworker, cmd): each call a fresh, empty store,
// closed when the test ends. Tests of the stores themselves open their own.
package teststores

import (
	"context"
	"path/filepath"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
)

// Kind names a store and opens a fresh one.
type Kind struct {
	Name string
	Open func(t *testing.T) audit.EventStore
}

// SQLite opens a store in a new file of the test's temporary directory; path
// is the file.
func SQLite(t *testing.T) (store *sqlite.Store, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// Postgres opens a store in a new database of the test PostgreSQL; url is
// the database's.
func Postgres(t *testing.T) (store *postgres.Store, url string) {
	t.Helper()
	url = testenv.PostgresDatabase(t)
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url, MaxConns: 4})
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, url
}

// Both are the two stores, for tests that run on each.
var Both = []Kind{
	{"sqlite", func(t *testing.T) audit.EventStore { s, _ := SQLite(t); return s }},
	{"postgres", func(t *testing.T) audit.EventStore { s, _ := Postgres(t); return s }},
}

// Refusing are the two stores with a database that refuses the events of
// storetest.RefusedPrincipal, as a constraint would.
var Refusing = []Kind{
	{"sqlite", func(t *testing.T) audit.EventStore {
		s, path := SQLite(t)
		storetest.RefuseInSQLite(t, path)
		return s
	}},
	{"postgres", func(t *testing.T) audit.EventStore {
		s, url := Postgres(t)
		storetest.RefuseInPostgres(t, url)
		return s
	}},
}
