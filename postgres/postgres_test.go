package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

func openTest(t testing.TB, mode insertMode) *Store {
	t.Helper()
	url := testenv.PostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := open(ctx, Config{URL: url, MaxConns: 8}, mode)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.EventStore { return openTest(t, insertCopy) })
}

func TestAlertConformance(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) audit.AlertStore { return openTest(t, insertCopy) })
}

// The unnest strategy is not the default, but it must stay correct while the
// benchmark compares it.
func TestConformanceUnnestStrategy(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) audit.EventStore { return openTest(t, insertUnnest) })
}

func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	url := testenv.PostgresDatabase(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = MigrateURL(ctx, url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
	}
	if err := MigrateURL(ctx, url); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	all, err := embeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, maxV int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(version) FROM audit_schema_migrations").Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(all) || maxV != all[len(all)-1].Version {
		t.Fatalf("%d migrations recorded (max %d), want %d (max %d)", n, maxV, len(all), all[len(all)-1].Version)
	}
	// A pool-based Migrate (what Open uses) on the migrated database is a no-op too.
	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := Migrate(ctx, s.Pool()); err != nil {
		t.Fatal(err)
	}
}

func partitions(t *testing.T, s *Store) map[string]string {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit_log'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var name, bound string
	if _, err := pgx.ForEachRow(rows, []any{&name, &bound}, func() error { out[name] = bound; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPartitionsCreatedAhead(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, "SET TIME ZONE 'Asia/Kolkata'"); err != nil {
		t.Fatal(err)
	}
	// Late on 31 December in UTC is already January in Kolkata and still
	// December in New York: the bounds must be UTC months regardless.
	now := time.Date(2030, 12, 31, 23, 30, 0, 0, time.FixedZone("EST", -5*3600)) // 2031-01-01 04:30 UTC
	s.ahead = 3
	if err := s.EnsurePartitions(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsurePartitions(ctx, now); err != nil { // idempotent
		t.Fatalf("second EnsurePartitions: %v", err)
	}
	got := partitions(t, s)
	if got["audit_log_default"] != "DEFAULT" {
		t.Fatalf("default partition: %q", got["audit_log_default"])
	}
	want := map[string]string{
		"audit_log_2031_01": "FOR VALUES FROM ('2031-01-01 00:00:00+00') TO ('2031-02-01 00:00:00+00')",
		"audit_log_2031_02": "FOR VALUES FROM ('2031-02-01 00:00:00+00') TO ('2031-03-01 00:00:00+00')",
		"audit_log_2031_03": "FOR VALUES FROM ('2031-03-01 00:00:00+00') TO ('2031-04-01 00:00:00+00')",
		"audit_log_2031_04": "FOR VALUES FROM ('2031-04-01 00:00:00+00') TO ('2031-05-01 00:00:00+00')",
	}
	// pg_get_expr prints bounds in the session time zone of the pool connection
	// that ran the query, which may not be the one we set; compare in UTC.
	if _, err := s.pool.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		t.Fatal(err)
	}
	got = partitions(t, s)
	for name, bound := range want {
		if got[name] != bound {
			t.Errorf("%s: bound %q, want %q", name, got[name], bound)
		}
	}
	if _, ok := got["audit_log_2031_05"]; ok {
		t.Error("created more than PartitionsAhead months ahead")
	}
	// Open made the partitions for the real current month and 3 ahead.
	this := monthStart(time.Now())
	for i := range 4 {
		if name := PartitionName(this.AddDate(0, i, 0)); got[name] == "" {
			t.Errorf("Open did not create %s", name)
		}
	}
}

func TestPartitionCreationMovesDefaultRows(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := t.Context()
	// Events of June 2040 arrive long before its partition exists: they land in
	// the default partition.
	recs := at(eventgen.New(11).Records(50, "test"), time.Date(2040, 6, 30, 23, 35, 0, 0, time.UTC)) // spans into July
	res, err := s.StoreBatch(ctx, audit.Batch{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	var inDefault int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM audit_log_default").Scan(&inDefault); err != nil {
		t.Fatal(err)
	}
	if inDefault != 50 {
		t.Fatalf("%d rows in the default partition, want 50", inDefault)
	}
	if err := s.EnsurePartitions(ctx, time.Date(2040, 6, 15, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("EnsurePartitions with rows of that month in the default partition: %v", err)
	}
	counts := map[string]int{}
	rows, err := s.pool.Query(ctx, "SELECT tableoid::regclass::text, count(*) FROM audit_log GROUP BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { counts[name] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	if counts["audit_log_default"] != 0 || counts["audit_log_2040_06"]+counts["audit_log_2040_07"] != 50 ||
		counts["audit_log_2040_06"] == 0 || counts["audit_log_2040_07"] == 0 {
		t.Fatalf("rows per partition after creation: %v", counts)
	}
	// Rows keep their Seq and content, and are still deduplicated.
	for i, r := range recs {
		got, err := s.GetEvent(ctx, r.IdempotencyKey)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != res[i].Seq || got.ComputeRecordHash() != r.RecordHash {
			t.Fatalf("%s: Seq %d (was %d), record hash match %v", r.IdempotencyKey, got.Seq, res[i].Seq, got.ComputeRecordHash() == r.RecordHash)
		}
	}
	again, err := s.StoreBatch(ctx, audit.Batch{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if !r.Duplicate {
			t.Fatalf("record %d stored twice after the move", i)
		}
	}
}

func TestMaintainPartitionsStopsWithContext(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.MaintainPartitions(ctx, 10*time.Millisecond) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("MaintainPartitions returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("MaintainPartitions did not stop")
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{URL: "postgres://postgres@127.0.0.1:1/audit?sslmode=disable&connect_timeout=2"})
	if err == nil || audit.ErrorCode(err) != audit.CodeUnavailable {
		t.Fatalf("Open(port 1) err = %v (code %q), want CodeUnavailable", err, audit.ErrorCode(err))
	}
	if err := MigrateURL(ctx, "postgres://postgres@127.0.0.1:1/audit?sslmode=disable"); audit.ErrorCode(err) != audit.CodeUnavailable {
		t.Fatalf("MigrateURL(port 1) err = %v, want CodeUnavailable", err)
	}
}

func TestServerGoneIsUnavailable(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := t.Context()
	recs := eventgen.New(12).Records(5, "test")
	// Kill every connection of the pool from the server side, as a restart would.
	if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
	conn.Release()
	if err == nil {
		t.Fatal("terminating the backend did not fail")
	}
	if got := wrapErr("x", err); audit.ErrorCode(got) != audit.CodeUnavailable {
		t.Fatalf("terminated connection: code %q, want unavailable (%v)", audit.ErrorCode(got), err)
	}
	// The pool replaces dead connections: the store keeps working.
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: recs}); err != nil {
		t.Fatalf("StoreBatch after the connections were killed: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := t.Context()
	recs := eventgen.New(13).Records(3, "test")
	bad := recs[2]
	bad.Details = []byte(`{"not json`)
	// A value the database refuses fails its record alone, not the batch.
	res, err := s.StoreBatch(ctx, audit.Batch{Records: []audit.Record{recs[0], recs[1], bad}})
	if err != nil || res[0].Seq == 0 || res[1].Seq == 0 || !strings.Contains(res[2].Refused, "(SQLSTATE 22P02)") {
		t.Fatalf("invalid details: %+v, %v; want the record refused with SQLSTATE 22P02, the others stored", res, err)
	}
	dup := []audit.Record{recs[0], recs[0]}
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: dup}); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("key twice in a batch: err = %v, want CodeInvalid", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.StoreBatch(cancelled, audit.Batch{Records: recs}); audit.ErrorCode(err) != audit.CodeUnavailable {
		t.Fatalf("cancelled: err = %v, want CodeUnavailable", err)
	}
	// A dead letter whose text is not storable as text is still kept.
	dl := audit.DeadLetter{IdempotencyKey: "k\x00\xff", Source: "http", Reason: audit.ReasonValidation,
		Message: "bad \x00 byte \xff", Errors: []audit.FieldError{{Field: "x\x00", Code: "c", Message: "\xfe"}},
		Payload: []byte{0, 1, 2}, ReceivedAt: time.Now()}
	if _, err := s.StoreBatch(ctx, audit.Batch{DeadLetters: []audit.DeadLetter{dl}}); err != nil {
		t.Fatalf("dead letter with NUL and invalid UTF-8 in its text: %v", err)
	}
	got, err := s.ListDeadLetters(ctx, 0, 10)
	if err != nil || len(got) != 2 || got[0].Reason != audit.ReasonStoreRefused || string(got[1].Payload) != "\x00\x01\x02" {
		t.Fatalf("ListDeadLetters = %+v, %v; want the refused record's, then the one with NUL", got, err)
	}
}

// at moves generated records to event times one minute apart from start, as a
// producer with that clock would have sent them (hash recomputed, no signature).
func at(recs []audit.Record, start time.Time) []audit.Record {
	for i := range recs {
		r := &recs[i]
		r.Time = start.Add(time.Duration(i) * time.Minute)
		r.Timestamp = r.Time.Format("2006-01-02T15:04:05.000Z")
		r.Hash = r.ComputeHash()
		r.Signature, r.SignatureAlgorithm, r.SignatureStatus = "", "", audit.SignatureAbsent
		r.RecordHash = r.ComputeRecordHash()
	}
	return recs
}
