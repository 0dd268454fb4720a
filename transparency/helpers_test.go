package transparency_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/transparency"
)

// env is a fresh store with a way to change its database behind its back.
type env struct {
	store storetest.TreeStore
	// exec runs SQL written with PostgreSQL placeholders ($1, ...) on the
	// store's database, as an attacker with database access would.
	exec func(t *testing.T, query string, args ...any)
	pg   string // the PostgreSQL URL; "" for SQLite
	// fresh returns an empty store of the same kind: a new SQLite file, or
	// the same PostgreSQL database emptied (creating one costs seconds).
	fresh func(t *testing.T) env
	// hashTable is the table of the tree's stored hashes: one row per hash
	// on SQLite, tiles of hashes on PostgreSQL.
	hashTable string
	// setHash overwrites the stored hash at index; dropHashesFrom deletes the
	// stored hashes that a tree of more than size leaves adds.
	setHash        func(t *testing.T, index int64, h [32]byte)
	dropHashesFrom func(t *testing.T, size int64)
}

var placeholder = regexp.MustCompile(`\$\d+`)

func sqliteEnv(t *testing.T) env {
	s, path := teststores.SQLite(t)
	e := env{store: s, fresh: sqliteEnv, hashTable: "tlog_hashes", exec: func(t *testing.T, query string, args ...any) {
		t.Helper()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), placeholder.ReplaceAllString(query, "?"), args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}}
	e.setHash = func(t *testing.T, index int64, h [32]byte) {
		e.exec(t, `UPDATE tlog_hashes SET hash = $1 WHERE hash_index = $2`, h[:], index)
	}
	e.dropHashesFrom = func(t *testing.T, size int64) {
		e.exec(t, `DELETE FROM tlog_hashes WHERE hash_index >= $1`, tlog.StoredHashCount(size))
	}
	return e
}

func postgresEnv(t *testing.T) env {
	s, url := teststores.Postgres(t)
	e := env{store: s, pg: url, hashTable: "tlog_hash_tiles"}
	e.exec = func(t *testing.T, query string, args ...any) {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(t.Context(), query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	e.fresh = func(t *testing.T) env {
		e.exec(t, `TRUNCATE audit_log, tlog_leaves, tlog_hash_tiles, tlog_checkpoints`)
		return e
	}
	// Hash n of level L is in tile n/32 at byte 32*(n%32) (postgres/tlogtiles.go).
	e.setHash = func(t *testing.T, index int64, h [32]byte) {
		level, n := tlog.SplitStoredHashIndex(index)
		e.exec(t, `UPDATE tlog_hash_tiles SET hashes = overlay(hashes placing $1 from $2 for 32) WHERE level = $3 AND tile = $4`,
			h[:], n%32*32+1, level, n/32)
	}
	e.dropHashesFrom = func(t *testing.T, size int64) {
		for level := 0; level < 63; level++ {
			n := size >> level
			e.exec(t, `DELETE FROM tlog_hash_tiles WHERE level = $1 AND tile * 32 >= $2`, level, n)
			e.exec(t, `UPDATE tlog_hash_tiles SET hashes = substring(hashes from 1 for $1) WHERE level = $2 AND tile = $3`,
				n%32*32, level, n/32)
		}
	}
	return e
}

// bothStores runs fn on a fresh SQLite and a fresh PostgreSQL store.
func bothStores(t *testing.T, fn func(t *testing.T, e env)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteEnv(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresEnv(t)) })
}

func newKey(t *testing.T, name string) transparency.Key {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := transparency.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const testOrigin = "audit.test/log"

// newIntegrator returns an integrator of e's tree that publishes to a file
// of the test's directory.
func newIntegrator(t *testing.T, e env, key transparency.Key) (*transparency.Integrator, string) {
	path := filepath.Join(t.TempDir(), "checkpoints.log")
	return transparency.NewIntegrator(e.store, transparency.Config{
		Origin: testOrigin, Key: key, Batch: 7,
		Publishers: []transparency.Publisher{&transparency.FilePublisher{Path: path}},
	}), path
}

// storeRecords stores n generated records and returns them as stored.
func storeRecords(t *testing.T, e env, seed uint64, n int) []audit.Record {
	t.Helper()
	g := eventgen.New(seed)
	g.HMACKey = []byte("transparency-test")
	recs := g.Records(n, fmt.Sprintf("transparency-%d", seed))
	res, err := e.store.StoreBatch(t.Context(), audit.Batch{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Seq == 0 {
			t.Fatalf("record %d was not stored: %+v", i, r)
		}
	}
	return recs
}

// integrateAll integrates every pending row and signs a checkpoint.
func integrateAll(t *testing.T, in *transparency.Integrator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		n, err := in.Integrate(ctx)
		if err != nil {
			t.Fatalf("Integrate: %v", err)
		}
		if n == 0 {
			break
		}
	}
	if err := in.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
}

func allEvents(t *testing.T, s audit.EventStore) []audit.StoredEvent {
	t.Helper()
	var out []audit.StoredEvent
	after := int64(0)
	for {
		page, err := s.ListEvents(t.Context(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}
