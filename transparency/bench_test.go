package transparency_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/transparency"
)

// The measurements of docs/BENCHMARKS.md (tamper evidence), on PostgreSQL.
// They load hundreds of thousands of rows, so they run only when asked:
//
//	AUDIT_BENCH_TLOG=1 [AUDIT_BENCH_TLOG_ROWS=1000000] go test ./transparency -run TestBenchTree -v -timeout 30m
//
// TestBenchTreeVerifyKept measures Verify alone on a database that is kept
// between runs (AUDIT_BENCH_TLOG_DB, created and filled by the first run), so
// that runs of two builds can be interleaved on the same rows:
//
//	AUDIT_BENCH_TLOG=1 AUDIT_BENCH_TLOG_ROWS=1000000 AUDIT_BENCH_TLOG_DB=audit_bench_tlog \
//	  go test ./transparency -run TestBenchTreeVerifyKept -v -timeout 30m

func benchRows(t *testing.T) int {
	if os.Getenv("AUDIT_BENCH_TLOG") != "1" {
		t.Skip("set AUDIT_BENCH_TLOG=1 to measure the tree on PostgreSQL")
	}
	n, err := strconv.Atoi(os.Getenv("AUDIT_BENCH_TLOG_ROWS"))
	if err != nil || n <= 0 {
		n = 200000
	}
	return n
}

// benchRecords returns a batch of n records whose keys differ from every
// other batch's (one set of events, re-keyed: generating a million events
// would take longer than storing them).
func benchRecords(base []audit.Record, batch int) []audit.Record {
	out := slices.Clone(base)
	for i := range out {
		out[i].IdempotencyKey = fmt.Sprintf("bench:%d:%d", batch, i)
		out[i].RecordHash = out[i].ComputeRecordHash()
	}
	return out
}

// rssKiB reads the process's resident set size.
func rssKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	return 0
}

// TestBenchTreeBacklogAndVerify stores a backlog of rows, integrates it
// (rows/s), signs a checkpoint and verifies the whole store (rows/s, RSS).
func TestBenchTreeBacklogAndVerify(t *testing.T) {
	n := benchRows(t)
	e := postgresEnv(t)
	ctx := context.Background()
	g := eventgen.New(9)
	base := g.Records(1000, "bench")
	start := time.Now()
	for b := 0; b*1000 < n; b++ {
		if _, err := e.store.StoreBatch(ctx, audit.Batch{Records: benchRecords(base, b)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("stored %d rows in %s", n, time.Since(start).Round(time.Millisecond))
	key := newKey(t, testOrigin)
	in := transparency.NewIntegrator(e.store, transparency.Config{Origin: testOrigin, Key: key})
	start = time.Now()
	total := 0
	for {
		k, err := in.Integrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += k
		if k == 0 {
			break
		}
	}
	took := time.Since(start)
	t.Logf("integrated %d rows in %s: %.0f rows/s", total, took.Round(time.Millisecond), float64(total)/took.Seconds())
	logTreeFootprint(t, e.pg, total)
	start = time.Now()
	if err := in.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoint of %d leaves signed in %s", total, time.Since(start).Round(time.Millisecond))

	runtime.GC()
	before := rssKiB()
	var peak int64
	start = time.Now()
	rep, err := transparency.Verify(ctx, e.store, transparency.VerifyOptions{Verifier: key.Verifier,
		Progress: func(int64) { peak = max(peak, rssKiB()) }})
	took = time.Since(start)
	if err != nil || !rep.OK {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
	t.Logf("verified %d rows in %s: %.0f rows/s; RSS %d MiB before, peak %d MiB", rep.Leaves, took.Round(time.Millisecond),
		float64(rep.Leaves)/took.Seconds(), before>>10, peak>>10)
}

// logTreeFootprint logs the bytes per leaf of the tree's tables with their
// indexes, and their row counts: what integration writes for every row.
func logTreeFootprint(t *testing.T, url string, leaves int) {
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT c.relname, pg_total_relation_size(c.oid), coalesce(s.n_tup_ins, 0)
		FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE c.relname LIKE 'tlog\_%' AND c.relkind = 'r' ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var bytes, inserted int64
		if err := rows.Scan(&name, &bytes, &inserted); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.1f bytes per leaf with its indexes, %d rows inserted", name, float64(bytes)/float64(leaves), inserted)
	}
}

// TestBenchTreeVerifyKept verifies the rows of a kept database (see above),
// filling it first when it is empty: rows/s, RSS before and peak.
func TestBenchTreeVerifyKept(t *testing.T) {
	n := benchRows(t)
	name := os.Getenv("AUDIT_BENCH_TLOG_DB")
	if name == "" {
		t.Skip("set AUDIT_BENCH_TLOG_DB to a database name to keep")
	}
	ctx := context.Background()
	store, key := keptBenchStore(t, name, n)
	runtime.GC()
	before := rssKiB()
	var peak int64
	start := time.Now()
	rep, err := transparency.Verify(ctx, store, transparency.VerifyOptions{Verifier: key.Verifier,
		Progress: func(int64) { peak = max(peak, rssKiB()) }})
	took := time.Since(start)
	if err != nil || !rep.OK {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
	t.Logf("verified %d rows in %s: %.0f rows/s; RSS %d MiB before, peak %d MiB", rep.Leaves, took.Round(time.Millisecond),
		float64(rep.Leaves)/took.Seconds(), before>>10, peak>>10)
}

// keptBenchStore opens (creating it if needed) the database name with n
// integrated rows and a checkpoint signed by a key kept beside it.
func keptBenchStore(t *testing.T, name string, n int) (*postgres.Store, transparency.Key) {
	ctx := context.Background()
	admin := testenv.PostgresAdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	store, err := postgres.Open(ctx, postgres.Config{URL: u.String(), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keyFile := filepath.Join(os.TempDir(), name+".checkpoint-key")
	var key transparency.Key
	if b, err := os.ReadFile(keyFile); err == nil {
		if key, err = transparency.ParseKey(string(b)); err != nil {
			t.Fatal(err)
		}
	} else {
		skey, _, err := note.GenerateKey(rand.Reader, testOrigin)
		if err != nil {
			t.Fatal(err)
		}
		if key, err = transparency.ParseKey(skey); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	size, err := store.TreeSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if size >= int64(n) {
		return store, key
	}
	if size != 0 {
		t.Fatalf("database %s holds %d leaves, not %d: drop it", name, size, n)
	}
	base := eventgen.New(9).Records(1000, "bench")
	start := time.Now()
	for b := 0; b*1000 < n; b++ {
		if _, err := store.StoreBatch(ctx, audit.Batch{Records: benchRecords(base, b)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("stored %d rows in %s", n, time.Since(start).Round(time.Millisecond))
	in := transparency.NewIntegrator(store, transparency.Config{Origin: testOrigin, Key: key})
	for {
		k, err := in.Integrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	if err := in.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s in %s", name, time.Since(start).Round(time.Millisecond))
	return store, key
}

// TestBenchTreeCheckpointLag stores batches at a steady rate while the
// integrator runs as in the worker, and measures, for each batch, the time
// from its commit to the signature of the first checkpoint covering it.
func TestBenchTreeCheckpointLag(t *testing.T) {
	benchRows(t)
	rate, _ := strconv.Atoi(os.Getenv("AUDIT_BENCH_TLOG_RATE"))
	if rate <= 0 {
		rate = 5000
	}
	const seconds, perBatch = 30, 500
	e := postgresEnv(t)
	key := newKey(t, testOrigin)
	type signed struct {
		size int64
		at   time.Time
	}
	var mu sync.Mutex
	var checkpoints []signed
	in := transparency.NewIntegrator(e.store, transparency.Config{Origin: testOrigin, Key: key,
		OnCheckpoint: func(size int64, _ time.Duration) {
			mu.Lock()
			checkpoints = append(checkpoints, signed{size, time.Now()})
			mu.Unlock()
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- in.Run(ctx) }()
	base := eventgen.New(10).Records(perBatch, "lag")
	type stored struct {
		rows int64
		at   time.Time
	}
	var batches []stored
	every := time.Second * perBatch / time.Duration(rate)
	next := time.Now()
	rows := int64(0)
	for b := 0; b < seconds*rate/perBatch; b++ {
		time.Sleep(time.Until(next))
		next = next.Add(every)
		if _, err := e.store.StoreBatch(ctx, audit.Batch{Records: benchRecords(base, b)}); err != nil {
			t.Fatal(err)
		}
		rows += perBatch
		batches = append(batches, stored{rows, time.Now()})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		last := int64(0)
		if len(checkpoints) > 0 {
			last = checkpoints[len(checkpoints)-1].size
		}
		mu.Unlock()
		if last >= rows || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	var lags []time.Duration
	for _, b := range batches {
		for _, c := range checkpoints {
			if c.size >= b.rows {
				lags = append(lags, c.at.Sub(b.at))
				break
			}
		}
	}
	if len(lags) != len(batches) {
		t.Fatalf("%d of %d batches reached a checkpoint", len(lags), len(batches))
	}
	slices.Sort(lags)
	pct := func(p float64) time.Duration { return lags[int(p*float64(len(lags)-1))].Round(time.Millisecond) }
	t.Logf("%d events/s for %d s (%d batches of %d, achieved %.0f events/s): %d checkpoints; lag p50 %s, p99 %s, max %s",
		rate, seconds, len(batches), perBatch, float64(rows)/batches[len(batches)-1].at.Sub(batches[0].at).Seconds(),
		len(checkpoints), pct(0.5), pct(0.99), lags[len(lags)-1].Round(time.Millisecond))
}
