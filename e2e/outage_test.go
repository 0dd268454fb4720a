package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// stopPostgresMode: AUDIT_E2E_STOP_POSTGRES=1 makes TestStoreOutage stop the
// real PostgreSQL server instead of cutting its proxy.
func stopPostgresMode() bool { return os.Getenv("AUDIT_E2E_STOP_POSTGRES") == "1" }

// TestStoreOutage cuts the worker off PostgreSQL for AUDIT_E2E_OUTAGE_SECONDS
// (default 5) while a Node producer keeps adding events, and checks that the
// circuit breaker opens and closes again, that processing resumes by itself,
// and that nothing is lost, dead-lettered or failed.
//
// The worker reaches PostgreSQL through a TCP proxy of this test; the cut closes
// every proxied connection (RST) and refuses new ones. With
// AUDIT_E2E_STOP_POSTGRES=1 the server itself is stopped and started again
// (pg_ctlcluster): run that alone, it breaks every other user of the server.
func TestStoreOutage(t *testing.T) {
	stopMode := stopPostgresMode()
	if !stopMode {
		t.Parallel()
	}
	start := time.Now()
	outage := time.Duration(envInt(t, "AUDIT_E2E_OUTAGE_SECONDS", 5)) * time.Second
	rate := envInt(t, "AUDIT_E2E_OUTAGE_RATE", 500)
	const before, after = 3 * time.Second, 5 * time.Second

	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	proxy := startProxy(t, hostPort(t, e.pgURL))
	cfg := e.writeConfig("worker.json", workerConfig{
		PostgresURL: withHost(t, e.pgURL, proxy.Addr()), Concurrency: 3, BatchSize: 250,
	})
	w := e.startWorker(cfg, logPath)
	pid := w.pid()

	// The producer runs through the whole outage and a little before and after.
	idsFile := filepath.Join(e.dir, "ids.txt")
	streamFor := before + outage + after
	sctx, cancel := context.WithTimeout(context.Background(), streamFor+2*time.Minute)
	defer cancel()
	stream := e.nodeCmd(sctx, "stream.mjs", queueName, "--rate", strconv.Itoa(rate),
		"--duration-ms", strconv.FormatInt(streamFor.Milliseconds(), 10), "--out", idsFile,
		"--watchdog-ms", strconv.FormatInt((streamFor+110*time.Second).Milliseconds(), 10))
	var sout, serr bytes.Buffer
	stream.Stdout, stream.Stderr = &sout, &serr
	if err := stream.Start(); err != nil {
		t.Fatalf("start stream.mjs: %v", err)
	}
	streamDone := make(chan error, 1)
	go func() { streamDone <- stream.Wait() }()

	time.Sleep(before)
	ctx := context.Background()
	rowsAtCut, err := e.rowCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cutStart := time.Now()
	if stopMode {
		t.Cleanup(func() { ensurePostgresRunning(t) })
		pgCtl(t, "stop")
		t.Logf("PostgreSQL stopped at %d rows (pg_ctlcluster stop took %s)", rowsAtCut, time.Since(cutStart).Round(time.Millisecond))
	} else {
		closed := cutProxy(proxy)
		t.Logf("proxy cut at %d rows: %d PostgreSQL connections reset, new ones refused", rowsAtCut, closed)
	}
	// Bounded by the outage length; only the proxy mode can count rows meanwhile.
	for time.Since(cutStart) < outage {
		time.Sleep(min(time.Second, outage-time.Since(cutStart)))
		if !stopMode {
			rows, err := e.rowCount(ctx)
			t.Logf("  %4.1f s into the cut: %d rows (err %v)", time.Since(cutStart).Seconds(), rows, err)
		}
	}
	if stopMode {
		pgCtl(t, "start")
		waitPostgres(t, e)
	} else {
		restoreProxy(t, proxy)
	}
	cutEnd := time.Now()
	t.Logf("outage over after %s (proxy reset %d connections)", cutEnd.Sub(cutStart).Round(time.Millisecond), proxy.Stats().Reset)

	select {
	case err := <-streamDone:
		if err != nil {
			t.Fatalf("stream.mjs: %v\nstdout: %s\nstderr: %s", err, sout.Bytes(), serr.Bytes())
		}
	case <-time.After(streamFor + time.Minute):
		t.Fatal("stream.mjs did not finish")
	}
	var res produced
	if err := json.Unmarshal(bytes.TrimSpace(sout.Bytes()), &res); err != nil {
		t.Fatalf("stream.mjs output %q: %v", sout.Bytes(), err)
	}
	t.Logf("producer: %d events in %d ms (%d/s offered)", res.Count, res.ElapsedMs, res.OfferedRate)
	keys := e.readKeys(idsFile, res.Count)

	e.waitDrained(int64(res.Count), 2*time.Minute, logPath)
	if w.exited() || w.pid() != pid {
		t.Fatalf("the worker did not survive the outage: %v", w.err)
	}
	var afterCut, producedDuringCut int64
	var firstAfter *time.Time
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE ingested_at > $1),
		count(*) FILTER (WHERE received_at BETWEEN $2 AND $1), min(ingested_at) FILTER (WHERE ingested_at > $1)
		FROM audit_log`, cutEnd, cutStart).Scan(&afterCut, &producedDuringCut, &firstAfter); err != nil {
		t.Fatal(err)
	}
	resumed := "never"
	if firstAfter != nil {
		resumed = firstAfter.Sub(cutEnd).Round(time.Millisecond).String() + " after the outage ended"
	}
	t.Logf("rows stored after the outage ended: %d (first batch %s); events produced during the outage: %d",
		afterCut, resumed, producedDuringCut)
	if afterCut == 0 || producedDuringCut == 0 {
		t.Errorf("processing did not resume after the outage (rows after: %d, produced during: %d)", afterCut, producedDuringCut)
	}
	if err := w.stop(t, 15*time.Second); err != nil {
		t.Errorf("worker did not stop cleanly on SIGTERM: %v", err)
	}
	checkBreakerLog(t, logPath, cutStart)
	e.checkStored(keys)
	e.checkRedisClean()
	t.Logf("total test time %s", time.Since(start).Round(time.Millisecond))
}

// checkBreakerLog asserts that the log shows the breaker going OPEN after the
// cut began and CLOSED after that.
func checkBreakerLog(t *testing.T, logPath string, cutStart time.Time) {
	t.Helper()
	var transitions []string
	openAt, closedAt := -1, -1
	retries := 0
	for _, m := range logEntries(t, logPath) {
		switch m["msg"] {
		case "batch not processed, keeping its jobs and retrying":
			retries++
		case "circuit breaker changed state":
			to, _ := m["to"].(string)
			ts, _ := m["time"].(string)
			when, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Errorf("log line with a bad time %q", ts)
				continue
			}
			transitions = append(transitions, when.Format("15:04:05.000")+" "+to)
			if to == "OPEN" && openAt < 0 && !when.Before(cutStart) {
				openAt = len(transitions) - 1
			}
			if to == "CLOSED" && openAt >= 0 {
				closedAt = len(transitions) - 1
			}
		}
	}
	shown := transitions
	if len(shown) > 8 {
		shown = append(append(slices.Clone(shown[:4]), fmt.Sprintf("... %d more ...", len(shown)-8)), shown[len(shown)-4:]...)
	}
	t.Logf("circuit breaker: %d transitions %v; batch retries logged: %d", len(transitions), shown, retries)
	if openAt < 0 {
		t.Errorf("the log shows no circuit breaker going OPEN during the outage")
	}
	if closedAt < 0 {
		t.Errorf("the log shows no circuit breaker CLOSED after it opened")
	}
}

// pgCtl runs pg_ctlcluster on the local cluster ("main" of the one installed version).
func pgCtl(t testing.TB, action string) {
	t.Helper()
	if err := runPgCtl(action); err != nil {
		t.Fatalf("pg_ctlcluster %s: %v", action, err)
	}
}

func runPgCtl(action string) error {
	versions, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(versions) != 1 {
		return fmt.Errorf("find the cluster version in /etc/postgresql: %d entries, %v", len(versions), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", versions[0].Name(), "main", action).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// ensurePostgresRunning starts the server if a failed test left it stopped.
func ensurePostgresRunning(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, "pg_isready", "-h", "127.0.0.1", "-q").Run(); err == nil {
		return
	}
	if err := runPgCtl("start"); err != nil {
		t.Errorf("PostgreSQL could not be started again: %v", err)
	}
}

// waitPostgres waits until the test's database answers again.
func waitPostgres(t testing.TB, e *env) {
	t.Helper()
	testenv.EventuallyNil(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := e.rowCount(ctx); err != nil {
			return fmt.Errorf("PostgreSQL not answering after its start: %w", err)
		}
		return nil
	})
}
