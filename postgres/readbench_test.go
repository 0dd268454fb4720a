package postgres

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/readbench"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// TestReadBench generates a year of history (5 million events over 12
// monthly partitions unless AUDIT_READ_BENCH_ROWS says otherwise) in the
// database audit_readbench and measures the read scenarios of
// internal/readbench through SearchEvents. Not CI: it takes minutes.
//
//	AUDIT_READ_BENCH=1 go test ./postgres -run TestReadBench -v -timeout 60m
//
// AUDIT_READ_BENCH_KEEP=1 keeps the database afterwards and reuses it when it
// already holds the history (to EXPLAIN by hand, or to measure again).
func TestReadBench(t *testing.T) {
	if os.Getenv("AUDIT_READ_BENCH") != "1" {
		t.Skip("set AUDIT_READ_BENCH=1 to generate a large history and measure searches")
	}
	rows := int64(5_000_000)
	if v := os.Getenv("AUDIT_READ_BENCH_ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 100_000 {
			t.Fatalf("AUDIT_READ_BENCH_ROWS: at least 100000 (is %q)", v)
		}
		rows = n
	}
	keep := os.Getenv("AUDIT_READ_BENCH_KEEP") == "1"
	ctx := context.Background()
	dbURL := readBenchDatabase(t, keep)
	s, err := Open(ctx, Config{URL: dbURL, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	to := time.Now().UTC().Truncate(time.Hour)
	h := readbench.History{Events: rows, From: monthStart(to).AddDate(0, -11, 0), To: to}
	var have int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE idempotency_key LIKE 'readbench:%'`).Scan(&have); err != nil {
		t.Fatal(err)
	}
	if have != rows {
		start := time.Now()
		fillReadBench(t, s, h)
		t.Logf("generated %d events over %s .. %s in %.0f s", rows, h.From.Format(time.DateOnly), h.To.Format(time.DateOnly), time.Since(start).Seconds())
	} else if err := s.pool.QueryRow(ctx, `SELECT min("timestamp"), max("timestamp") FROM audit_log`).Scan(&h.From, &h.To); err != nil {
		t.Fatal(err)
	}

	results := readbench.Run(t, readbench.StoreSearch(s), h, 200, []readbench.DeepScenario{
		{Name: "organisation, 10,000 pages deep", Query: audit.EventQuery{Organizations: []string{readbench.BigOrganization}}, Pages: readbench.DeepPages},
		{Name: "all organisations, 10,000 pages deep", Query: audit.EventQuery{}, Pages: readbench.DeepPages},
	})
	results = append(results, readbench.RunHTTP(t, readbench.ServeHTTP(t, s, s, s, h.From), h, 200,
		"organisation, 24 h window", "principal", "correlation id")...)
	t.Logf("PostgreSQL, %d events:\n%s", rows, readbench.Table(results))
}

// readBenchDatabase returns the URL of audit_readbench, created if absent
// (from scratch unless keep), and dropped at the end unless keep.
func readBenchDatabase(t *testing.T, keep bool) string {
	t.Helper()
	ctx := context.Background()
	admin := testenv.PostgresAdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", "see internal/testenv", err)
	}
	defer conn.Close(ctx)
	const name = "audit_readbench"
	if !keep {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Fatal(err)
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
	}
	if !keep {
		t.Cleanup(func() {
			c, err := pgx.Connect(context.Background(), admin)
			if err != nil {
				t.Log(err)
				return
			}
			defer c.Close(context.Background())
			if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Log(err)
			}
		})
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// readBenchTemplate is how many distinct eventgen events the history is
// made of.
const readBenchTemplate = 20_000

// fillReadBench writes h.Events events spread evenly over [h.From, h.To):
// readBenchTemplate realistic events from eventgen are stored through
// StoreBatch (the COPY path), then copied by INSERT … SELECT over
// generate_series with a new event time, organisation (readbench.BigShare
// in the big one), principal, correlation id (shared by
// readbench.CorrelationGroup neighbours) and idempotency key each; details,
// actions and the rest come from the template. The copies' hashes do not
// match their new fields: this database is for reading only. The query
// indexes are dropped during the copy and built again after, as a bulk load
// does.
func fillReadBench(t *testing.T, s *Store, h readbench.History) {
	t.Helper()
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`TRUNCATE audit_log`)
	exec(`DROP TABLE IF EXISTS readbench_template`)
	for m := monthStart(h.From); m.Before(h.To); m = m.AddDate(0, 1, 0) {
		var exists bool
		if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", PartitionName(m)).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			if err := s.createPartition(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	g := eventgen.New(1)
	g.HMACKey = []byte("readbench-key")
	for done := 0; done < readBenchTemplate; done += 1000 {
		if _, err := s.StoreBatch(ctx, audit.Batch{Records: g.Records(1000, "readbench")}); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE TABLE readbench_template AS SELECT (row_number() OVER (ORDER BY id) - 1)::int AS k, * FROM audit_log`)
	exec(`TRUNCATE audit_log`)

	rows, err := s.pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE tablename = 'audit_log' AND indexname NOT IN ('audit_log_pkey', 'audit_log_idempotency_key_idx')`)
	if err != nil {
		t.Fatal(err)
	}
	type index struct{ name, def string }
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		return ix, r.Scan(&ix.name, &ix.def)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range indexes {
		exec(`DROP INDEX ` + pgx.Identifier{ix.name}.Sanitize())
	}
	step := h.To.Sub(h.From).Microseconds() / h.Events
	const chunk = 500_000
	for lo := int64(0); lo < h.Events; lo += chunk {
		start := time.Now()
		exec(`INSERT INTO audit_log ("timestamp", timestamp_raw, ttl, principal_id, organization_id, action,
				target_resource_type, target_resource_id, status, outcome_description, hash, hash_algorithm,
				event_version, correlation_id, data_classification, retention_policy, processing_latency, details,
				idempotency_key, source, hash_status, signature, signature_algorithm, signature_status, record_hash,
				received_at)
			SELECT g.ts, to_char(g.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), t.ttl,
				'user-' || lpad(floor(random() * $5)::int::text, 5, '0'),
				CASE WHEN random() < $6 THEN $7 ELSE 'org-' || lpad((1 + floor(random() * ($8 - 1)))::int::text, 3, '0') END,
				t.action, t.target_resource_type, t.target_resource_id, t.status, t.outcome_description, t.hash,
				t.hash_algorithm, t.event_version,
				'corr-' || lpad(to_hex((g.i / $9) * 2654435761 % 281474976710656), 12, '0'),
				t.data_classification, t.retention_policy, t.processing_latency, t.details,
				'readbench:' || g.i, t.source, t.hash_status, t.signature, t.signature_algorithm, t.signature_status,
				t.record_hash, g.ts + interval '40 ms'
			FROM (SELECT i, $3::timestamptz + make_interval(secs => i * $4 / 1e6) AS ts
				FROM generate_series($1::bigint, $2::bigint) AS i) g
			JOIN readbench_template t ON t.k = g.i % $10`,
			lo, min(lo+chunk, h.Events)-1, h.From, step, readbench.Principals, readbench.BigShare,
			readbench.BigOrganization, readbench.Organizations, readbench.CorrelationGroup, readBenchTemplate)
		t.Logf("rows %d..%d in %.1f s", lo, min(lo+chunk, h.Events), time.Since(start).Seconds())
	}
	for _, ix := range indexes {
		start := time.Now()
		// pg_indexes shows the parent's index as "ON ONLY audit_log", which
		// would leave the partitions without it.
		exec(strings.Replace(ix.def, " ON ONLY ", " ON ", 1))
		t.Logf("%s in %.1f s", ix.name, time.Since(start).Seconds())
	}
	exec(`DROP TABLE readbench_template`)
	exec(`VACUUM ANALYZE audit_log`)
}
