package postgres

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// TestTileMigrationKeepsEveryHash builds a tree in the layout before
// migration 009 (a row per stored hash), migrates, and reads every hash back
// from the tiles; a hash that was missing reads as zeros, so that
// verification reports it.
func TestTileMigrationKeepsEveryHash(t *testing.T) {
	url := testenv.PostgresDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	all, err := embeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE audit_schema_migrations (version integer PRIMARY KEY,
		name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Version > 8 {
			break
		}
		if _, err := conn.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", m.ID(), err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO audit_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}

	const size = 1000
	var want []tlog.Hash
	memory := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = want[x]
		}
		return out, nil
	})
	var leaves [][]any
	for i := range int64(size) {
		data := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		hs, err := tlog.StoredHashes(i, data[:], memory)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, hs...)
		leaves = append(leaves, []any{i, i + 1, time.Now(), data[:]})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"tlog_leaves"}, []string{"leaf_index", "event_id", "event_time", "leaf_data"},
		pgx.CopyFromRows(leaves)); err != nil {
		t.Fatal(err)
	}
	const lost = 5 // a stored hash someone deleted before the upgrade
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"tlog_hashes"}, []string{"hash_index", "hash"},
		pgx.CopyFromSlice(len(want), func(i int) ([]any, error) {
			if i == lost {
				return []any{int64(-1), want[i][:]}, nil // out of the tree's range: never read
			}
			return []any{int64(i), want[i][:]}, nil
		})); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatalf("Open (migrates to tiles): %v", err)
	}
	defer s.Close()
	idx := make([]int64, len(want))
	for i := range idx {
		idx[i] = int64(i)
	}
	got, err := s.ReadHashes(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		w := want[i]
		if i == lost {
			w = tlog.Hash{}
		}
		if tlog.Hash(got[i]) != w {
			t.Fatalf("stored hash %d after migration: %x, want %x", i, got[i], w)
		}
	}
	var old bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('tlog_hashes') IS NOT NULL`).Scan(&old); err != nil || old {
		t.Fatalf("tlog_hashes still exists (%v)", err)
	}
	if _, err := s.ReadHashes(ctx, []int64{tlog.StoredHashCount(size)}); err == nil {
		t.Fatal("a hash past the tree's end was read")
	}
}
