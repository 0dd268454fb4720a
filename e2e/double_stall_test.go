package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// TestDoubleStall: the jobs of a worker that dies twice while holding them (a
// crash loop while the store is down) stall twice, and BullMQ's stalled check
// gives them a deferred failure ("defa") once they stalled more than
// maxStalledCount (1) times. A BullMQ worker fails such jobs; ours processes
// them, so every event is still stored, exactly once. Short lock and stalled
// intervals (5 s, or AUDIT_E2E_LOCK_MS) keep it to about 30 s.
func TestDoubleStall(t *testing.T) {
	if testingParallelOK() {
		t.Parallel()
	}
	const n = 5
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	proxy := startProxy(t, hostPort(t, e.pgURL))
	cfg := e.writeConfig("worker.json", workerConfig{
		PostgresURL: withHost(t, e.pgURL, proxy.Addr()), Concurrency: 1, BatchSize: 10, LockMs: doubleStallLockMs(t),
	})
	ctx := context.Background()
	stallCounts := func() []string {
		var out []string
		for i := 1; i <= n; i++ {
			v, _ := e.rdb.HGet(ctx, e.prefix+":"+queueName+":"+strconv.Itoa(i), "stc").Result()
			out = append(out, v)
		}
		return out
	}
	// waitActive waits until the n jobs are active, held by the running worker
	// (locked) and have stalled `stalls` times before.
	waitActive := func(stalls string, timeout time.Duration) {
		t.Helper()
		testenv.EventuallyNil(t, timeout, func() error {
			active, _ := e.rdb.LLen(ctx, e.prefix+":"+queueName+":active").Result()
			locks, _ := e.rdb.Exists(ctx, e.prefix+":"+queueName+":1:lock").Result()
			if active == n && locks == 1 && stallCounts()[0] == stalls {
				return nil
			}
			return fmt.Errorf("jobs not held by the worker: %d active, lock of job 1 held: %v, stalled counts %v", active, locks == 1, stallCounts())
		})
	}

	w := e.startWorker(cfg, logPath)
	cutProxy(proxy)
	res, keys := e.enqueue(n, filepath.Join(e.dir, "ids.txt"))
	t.Logf("store cut off, %d events enqueued", res.Count)
	waitActive("", 30*time.Second)
	w.kill(t)
	t.Logf("worker killed holding the %d jobs (1st time)", n)

	restoreProxy(t, proxy)
	w = e.startWorker(cfg, logPath) // start-up needs the store (migrations)
	cutProxy(proxy)
	waitActive("1", 3*time.Minute)
	w.kill(t)
	t.Logf("worker killed holding the %d recovered jobs (2nd time); stalled counts %v", n, stallCounts())

	restoreProxy(t, proxy)
	w = e.startWorker(cfg, logPath)
	var counts map[string]int64
	var rows int64
	testenv.Until(3*time.Minute, func() bool { // judged below, after the outcome is logged
		counts, _ = e.queueCounts(ctx, queueName)
		rows, _ = e.rowCount(ctx)
		return counts != nil && pending(counts) == 0
	})
	dead, _ := e.queueCounts(ctx, deadQueueName)
	var deadRows int64
	_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM audit_dead_letter`).Scan(&deadRows)
	reason, _ := e.rdb.HGet(ctx, e.prefix+":"+queueName+":1", "failedReason").Result()
	t.Logf("outcome: %d of %d events stored; queue %v; dead-letter queue %v; audit_dead_letter %d; stalled counts %v; failedReason of job 1: %q",
		rows, len(keys), counts, dead, deadRows, stallCounts(), reason)
	_ = w.stop(t, 15*time.Second)
	if rows != n || counts["failed"] != 0 || pending(dead) != 0 || deadRows != 0 {
		t.Errorf("want all %d events stored, none failed or dead-lettered", n)
	}
}

func doubleStallLockMs(t *testing.T) int {
	if ms := lockMs(t); ms > 0 {
		return ms
	}
	return 5000
}
