package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// TestCrashRecoveryExactlyOnce enqueues AUDIT_E2E_EVENTS events with Node
// (addBulk, production job options), SIGKILLs the worker three times while it
// processes them (after 20 %, 45 % and 70 % of the rows are stored), restarts it
// each time, and checks that every job was stored exactly once and that Redis
// is left clean. Jobs a killed worker held come back through BullMQ's stalled
// check: 30 to 60 s with the default lock duration and stalled interval
// (AUDIT_E2E_LOCK_MS sets both shorter, e.g. 5000).
func TestCrashRecoveryExactlyOnce(t *testing.T) {
	if testingParallelOK() {
		t.Parallel()
	}
	start := time.Now()
	n := envInt(t, "AUDIT_E2E_EVENTS", 10000)
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)

	res, keys := e.enqueue(n, filepath.Join(e.dir, "ids.txt"))
	t.Logf("enqueued %d events with addBulk in %d ms", res.Count, res.ElapsedMs)

	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 3, BatchSize: 250, LockMs: lockMs(t)})
	w := e.startWorker(cfg, logPath)
	ctx := context.Background()
	stranded := 0
	for i, frac := range []float64{0.20, 0.45, 0.70} {
		threshold := int64(frac * float64(n))
		atStart, err := e.rowCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Kill once the threshold is passed and this run has stored something
		// itself, so that every kill hits a worker that is processing.
		var rows int64
		testenv.EventuallyNil(t, 2*time.Minute+time.Duration(n)*time.Millisecond, func() error {
			if rows, err = e.rowCount(ctx); err != nil {
				t.Fatal(err)
			}
			if rows >= threshold && rows > atStart {
				return nil
			}
			if w.exited() {
				t.Fatalf("worker exited by itself: %v", w.err)
			}
			return fmt.Errorf("kill %d: only %d/%d rows", i+1, rows, n)
		})
		w.kill(t)
		counts, err := e.queueCounts(ctx, queueName)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := e.rowCount(ctx)
		t.Logf("kill %d (SIGKILL pid %d) at %d rows (%.0f %%; %d after the kill): queue %v",
			i+1, w.pid(), rows, 100*float64(rows)/float64(n), after, counts)
		if counts["active"] > 0 {
			stranded++
		}
		if after == int64(n) && pending(counts) == 0 {
			t.Logf("kill %d came after the last job was done", i+1)
		}
		w = e.startWorker(cfg, logPath)
	}
	if stranded == 0 {
		t.Errorf("no kill left jobs in active: the stalled-job recovery was not exercised")
	}

	e.waitDrained(int64(n), 3*time.Minute+time.Duration(n)*time.Millisecond, logPath)
	if err := w.stop(t, 15*time.Second); err != nil {
		t.Errorf("final worker did not stop cleanly on SIGTERM: %v", err)
	}
	e.checkStored(keys)
	e.checkRedisClean()
	recovered := 0
	var final map[string]any
	for _, m := range logEntries(t, logPath) {
		switch m["msg"] {
		case "recovered stalled jobs":
			if v, ok := m["jobs"].(float64); ok {
				recovered += int(v)
			}
		case "stopped":
			final = m
		}
	}
	t.Logf("worker log: %d stalled jobs recovered; the last run stored %v and found %v duplicates; total test time %s",
		recovered, final["stored"], final["duplicates"], time.Since(start).Round(time.Millisecond))
}

// testingParallelOK reports whether the e2e tests may run in parallel: not
// while one of them stops the PostgreSQL server.
func testingParallelOK() bool { return !stopPostgresMode() }
