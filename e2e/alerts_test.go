package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// Two worker processes share one queue and one database. Five failed logins of
// one principal are split between them, three and two: the detector's count
// lives in Redis, so the process that handles the fifth sees five and one
// FAILED_AUTH alert is raised, once.
func TestTwoWorkersRaiseOneFailedAuthAlert(t *testing.T) {
	if testingParallelOK() {
		t.Parallel()
	}
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "workers.log")
	dumpLogOnFailure(t, logPath)
	// One job per fetch, so that each job is a batch of its own.
	// Short locks: a job a frozen worker holds comes back within seconds.
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 1, BatchSize: 1, LockMs: 3000})
	a := e.startWorker(cfg, logPath)
	b := e.startWorker(cfg, logPath)

	q := bullmq.NewQueue(e.rdb, queueName, bullmq.QueueOptions{Prefix: e.prefix})
	ctx := context.Background()
	now := time.Now().UTC()
	failure := func(i int) bullmq.NewJob {
		ev := map[string]any{
			"timestamp":          now.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			"action":             "auth.login.failure",
			"status":             "failure",
			"principalId":        "u-e2e-attacker",
			"organizationId":     "org-e2e",
			"outcomeDescription": "wrong password",
		}
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return bullmq.NewJob{Name: queueName, Data: data}
	}

	// Worker b is frozen while a takes the first three, then a is frozen while b
	// takes the last two: both processes are running workers throughout.
	freeze(t, b)
	if _, err := q.AddBulk(ctx, []bullmq.NewJob{failure(0), failure(1), failure(2)}); err != nil {
		t.Fatal(err)
	}
	e.waitDrained(3, time.Minute, logPath) // stored and acknowledged: a is idle when it is frozen
	thaw(t, b)
	freeze(t, a)
	if _, err := q.AddBulk(ctx, []bullmq.NewJob{failure(3), failure(4)}); err != nil {
		t.Fatal(err)
	}
	e.waitDrained(5, time.Minute, logPath)
	thaw(t, a)

	var alerts []map[string]any
	testenv.Until(10*time.Second, func() bool { // judged below, with the alerts listed
		alerts = e.listAlerts(cfg, "--type", "SECURITY")
		return len(alerts) > 0
	})
	var failedAuth []map[string]any
	for _, al := range alerts {
		if al["title"] == "Suspicious pattern: FAILED_AUTH" {
			failedAuth = append(failedAuth, al)
		}
	}
	if len(failedAuth) != 1 {
		t.Fatalf("FAILED_AUTH alerts = %d, want 1: %v", len(failedAuth), alerts)
	}
	al := failedAuth[0]
	if al["occurrences"] != float64(1) || al["severity"] != "HIGH" || al["organizationId"] != "org-e2e" {
		t.Errorf("alert = %v, want occurrences 1, HIGH, org-e2e", al)
	}
	var meta struct {
		Count     int      `json:"count"`
		EventKeys []string `json:"eventKeys"`
	}
	raw, _ := json.Marshal(al["metadata"])
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Count != 5 || len(meta.EventKeys) != 5 {
		t.Errorf("evidence = %s, want a count of 5 and the 5 event keys", raw)
	}
	t.Logf("alert %v raised once for 5 failures, 3 stored by pid %d and 2 by pid %d", al["id"], a.pid(), b.pid())
}

// freeze stops the process and waits until every one of its threads has
// stopped: SIGSTOP takes effect asynchronously, and a worker still running for
// a moment could take a job added next and hold its transaction open while
// frozen (a CI run under -race saw exactly that).
func freeze(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("every thread of pid %d to stop after SIGSTOP", p.pid()),
		func() bool { return allThreadsStopped(t, p.pid()) })
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped), from /proc/PID/task/TID/stat.
func allThreadsStopped(t *testing.T, pid int) bool {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("threads of pid %d: %v", pid, err)
	}
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			return false // a thread that just exited; look again
		}
		// The state follows the command name, which is in parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 || i+2 >= len(data) || data[i+2] != 'T' {
			return false
		}
	}
	return true
}

func thaw(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// listAlerts runs "audit-worker alerts list --output json" with the worker's configuration.
func (e *env) listAlerts(cfgPath string, args ...string) []map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, append([]string{"--config", cfgPath, "alerts", "list", "--output", "json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("audit-worker alerts list: %v\n%s", err, out)
	}
	var page struct {
		Alerts []map[string]any `json:"alerts"`
	}
	if err := json.Unmarshal(out, &page); err != nil {
		e.t.Fatalf("alerts list output: %v\n%s", err, out)
	}
	return page.Alerts
}
