package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/readbench"
)

// TestReadBench generates a year of history (1,050,000 events unless
// AUDIT_READ_BENCH_ROWS says otherwise: the deep scenario reads 10,000 pages
// of 100 across every organisation and needs rows left after them) in
// $TMPDIR/audit_readbench.db and measures the read scenarios of
// internal/readbench through SearchEvents. Not CI: it takes minutes.
//
//	AUDIT_READ_BENCH=1 go test ./sqlite -run TestReadBench -v -timeout 60m
//
// AUDIT_READ_BENCH_KEEP=1 keeps the file afterwards and reuses it when it
// already holds the history.
func TestReadBench(t *testing.T) {
	if os.Getenv("AUDIT_READ_BENCH") != "1" {
		t.Skip("set AUDIT_READ_BENCH=1 to generate a large history and measure searches")
	}
	rows := int64(1_050_000)
	if v := os.Getenv("AUDIT_READ_BENCH_ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 100_000 {
			t.Fatalf("AUDIT_READ_BENCH_ROWS: at least 100000 (is %q)", v)
		}
		rows = n
	}
	path := filepath.Join(os.TempDir(), "audit_readbench.db")
	if os.Getenv("AUDIT_READ_BENCH_KEEP") != "1" {
		removeDatabase(t, path)
		t.Cleanup(func() { removeDatabase(t, path) })
	}
	ctx := context.Background()
	to := time.Now().UTC().Truncate(time.Hour)
	from := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -11, 0)
	h := readbench.History{Events: rows, From: from, To: to}

	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var have int64
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE idempotency_key LIKE 'readbench:%'`).Scan(&have); err != nil {
		t.Fatal(err)
	}
	if have != rows {
		start := time.Now()
		fillReadBench(t, s, path, h)
		t.Logf("generated %d events over %s .. %s in %.0f s", rows, h.From.Format(time.DateOnly), h.To.Format(time.DateOnly), time.Since(start).Seconds())
		if s, err = Open(ctx, Config{Path: path}); err != nil {
			t.Fatal(err)
		}
	} else {
		var lo, hi int64
		if err := s.reader.QueryRowContext(ctx, `SELECT min(timestamp), max(timestamp) FROM audit_log`).Scan(&lo, &hi); err != nil {
			t.Fatal(err)
		}
		h.From, h.To = time.UnixMicro(lo).UTC(), time.UnixMicro(hi).UTC()
	}
	defer s.Close()

	results := readbench.Run(t, readbench.StoreSearch(s), h, 200, []readbench.DeepScenario{
		{Name: "all organisations, 10,000 pages deep", Query: audit.EventQuery{}, Pages: readbench.DeepPages},
		{Name: "organisation, 2,000 pages deep", Query: audit.EventQuery{Organizations: []string{readbench.BigOrganization}}, Pages: 2000},
	})
	results = append(results, readbench.RunHTTP(t, readbench.ServeHTTP(t, s, s, s, h.From), h, 200,
		"organisation, 24 h window", "principal", "correlation id")...)
	t.Logf("SQLite, %d events:\n%s", rows, readbench.Table(results))
}

func removeDatabase(t *testing.T, path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			t.Log(err)
		}
	}
}

// readBenchTemplate is how many distinct eventgen events the history is
// made of.
const readBenchTemplate = 20_000

// fillReadBench writes h.Events events spread evenly over [h.From, h.To), as
// the PostgreSQL generator does (postgres/readbench_test.go):
// readBenchTemplate eventgen events stored through StoreBatch, copied by
// INSERT … SELECT with a new time, organisation, principal, correlation id
// and key each, with the query indexes dropped during the copy. Like the store, it does
// not ANALYZE: plans rest on the statistics of 006_search_indexes. It closes s.
func fillReadBench(t *testing.T, s *Store, path string, h readbench.History) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	g := eventgen.New(1)
	g.HMACKey = []byte("readbench-key")
	for done := 0; done < readBenchTemplate; done += 1000 {
		if _, err := s.StoreBatch(ctx, audit.Batch{Records: g.Records(1000, "readbench")}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	exec(`PRAGMA journal_mode = WAL`)
	exec(`PRAGMA synchronous = OFF`)
	exec(`DROP TABLE IF EXISTS readbench_template`)
	exec(`CREATE TABLE readbench_template AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, * FROM audit_log`)
	exec(`DELETE FROM audit_log`)
	rows, err := db.QueryContext(ctx, `SELECT name, sql FROM sqlite_master
		WHERE type = 'index' AND tbl_name = 'audit_log' AND sql IS NOT NULL AND name <> 'audit_log_idempotency'`)
	if err != nil {
		t.Fatal(err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// DROP INDEX deletes the index's statistics (006_search_indexes): keep
	// them to put back.
	exec(`CREATE TEMP TABLE readbench_stat1 AS SELECT * FROM sqlite_stat1`)
	for _, name := range names {
		exec(`DROP INDEX "` + name + `"`)
	}
	step := h.To.Sub(h.From).Microseconds() / h.Events
	const chunk = 250_000
	for lo := int64(0); lo < h.Events; lo += chunk {
		start := time.Now()
		exec(`WITH RECURSIVE g(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM g WHERE i < ?)
			INSERT INTO audit_log (timestamp, timestamp_raw, ttl, principal_id, organization_id, action,
				target_resource_type, target_resource_id, status, outcome_description, hash, hash_algorithm,
				event_version, correlation_id, data_classification, retention_policy, processing_latency, archived_at,
				details, idempotency_key, source, hash_status, signature, signature_algorithm, signature_status,
				record_hash, received_at, ingested_at)
			SELECT ts, strftime('%Y-%m-%dT%H:%M:%fZ', ts / 1e6, 'unixepoch'), t.ttl,
				printf('user-%05d', abs(random()) % ?),
				CASE WHEN abs(random()) % 1000 < ? THEN ? ELSE printf('org-%03d', 1 + abs(random()) % (? - 1)) END,
				t.action, t.target_resource_type, t.target_resource_id, t.status, t.outcome_description, t.hash,
				t.hash_algorithm, t.event_version, printf('corr-%012x', (i / ?) * 2654435761 % 281474976710656),
				t.data_classification, t.retention_policy, t.processing_latency, NULL, t.details,
				'readbench:' || i, t.source, t.hash_status, t.signature, t.signature_algorithm, t.signature_status,
				t.record_hash, ts + 40000, ts + 80000
			FROM (SELECT i, ? + i * ? AS ts FROM g) JOIN readbench_template t ON t.k = i % ?`,
			lo, min(lo+chunk, h.Events)-1, readbench.Principals, int(readbench.BigShare*1000), readbench.BigOrganization,
			readbench.Organizations, readbench.CorrelationGroup, h.From.UnixMicro(), step, readBenchTemplate)
		t.Logf("rows %d..%d in %.1f s", lo, min(lo+chunk, h.Events), time.Since(start).Seconds())
	}
	for i, def := range defs {
		start := time.Now()
		exec(def)
		t.Logf("%s in %.1f s", names[i], time.Since(start).Seconds())
	}
	exec(`DELETE FROM sqlite_stat1`)
	exec(`INSERT INTO sqlite_stat1 SELECT * FROM readbench_stat1`)
	exec(`DROP TABLE readbench_template`)
	exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
}
