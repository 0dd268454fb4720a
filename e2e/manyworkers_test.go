package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// goWorker is one audit-worker process of a group sharing a queue, with a log
// file of its own (so that its HTTP address and its log lines are its own).
type goWorker struct {
	name    string
	p       *proc
	logPath string
	baseURL string
}

// startGoWorkers starts n workers with the same configuration.
func (e *env) startGoWorkers(n int, cfgPath string) []*goWorker {
	e.t.Helper()
	ws := make([]*goWorker, n)
	for i := range ws {
		w := &goWorker{name: fmt.Sprintf("go-%d", i+1), logPath: filepath.Join(e.dir, fmt.Sprintf("worker-%d.log", i+1))}
		dumpLogOnFailure(e.t, w.logPath)
		w.p = e.startWorker(cfgPath, w.logPath)
		// The worker logs its HTTP address just after it starts consuming.
		testenv.Eventually(e.t, 30*time.Second, w.name+"'s HTTP address", func() bool {
			return logContains(w.logPath, 0, `"msg":"audit worker started"`)
		})
		w.baseURL = workerURL(e.t, w.logPath)
		ws[i] = w
	}
	return ws
}

// metrics reads the worker's /metrics as series (name with labels) → value.
func (w *goWorker) metrics(t testing.TB) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.baseURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ingestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: GET /metrics: %v", w.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: GET /metrics: status %d, %v", w.name, resp.StatusCode, err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// metricSum adds up every series of a metric (all label values).
func metricSum(m map[string]float64, name string) float64 {
	var sum float64
	for series, v := range m {
		if series == name || strings.HasPrefix(series, name+"{") {
			sum += v
		}
	}
	return sum
}

// recoveredStalled adds up the "recovered stalled jobs" log lines of a worker
// and returns the time of the first one logged after since.
func recoveredStalled(t testing.TB, logPath string, since time.Time) (jobs int, first time.Time) {
	for _, m := range logEntries(t, logPath) {
		if m["msg"] != "recovered stalled jobs" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"]))
		if err != nil || at.Before(since) {
			continue
		}
		if v, ok := m["jobs"].(float64); ok {
			jobs += int(v)
		}
		if first.IsZero() {
			first = at
		}
	}
	return jobs, first
}

// nodeConsumer is node/node-consumer.mjs running: a bullmq Worker of the same
// queue whose processor records the jobs it took instead of storing them.
type nodeConsumer struct {
	cmd    *exec.Cmd
	out    string
	stdout bytes.Buffer
	done   chan error
}

func (e *env) startNodeConsumer(concurrency int) *nodeConsumer {
	e.t.Helper()
	nc := &nodeConsumer{out: filepath.Join(e.dir, "node-taken.txt"), done: make(chan error, 1)}
	nc.cmd = e.nodeCmd(context.Background(), "node-consumer.mjs", queueName,
		"--out", nc.out, "--concurrency", strconv.Itoa(concurrency))
	nc.cmd.Stdout = &nc.stdout
	stderr, err := nc.cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := nc.cmd.Start(); err != nil {
		e.t.Fatalf("start node-consumer.mjs: %v", err)
	}
	ready := make(chan struct{})
	var errText strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
				continue
			}
			errText.WriteString(sc.Text() + "\n")
		}
	}()
	go func() { nc.done <- nc.cmd.Wait() }()
	e.t.Cleanup(func() {
		if nc.cmd.ProcessState == nil {
			_ = nc.cmd.Process.Kill()
		}
	})
	select {
	case <-ready:
	case err := <-nc.done:
		e.t.Fatalf("node-consumer.mjs exited during start-up: %v\n%s", err, errText.String())
	case <-time.After(30 * time.Second):
		e.t.Fatal("node-consumer.mjs not ready after 30 s")
	}
	return nc
}

// stop ends the Node consumer (SIGTERM: it finishes its jobs in progress) and
// returns the idempotency keys of the jobs it completed.
func (nc *nodeConsumer) stop(e *env) map[string]bool {
	e.t.Helper()
	if err := nc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	select {
	case err := <-nc.done:
		if err != nil {
			e.t.Fatalf("node-consumer.mjs: %v\nstdout: %s", err, nc.stdout.Bytes())
		}
	case <-time.After(time.Minute):
		e.t.Fatal("node-consumer.mjs still running a minute after SIGTERM")
	}
	var res struct{ Completed, Failed int }
	if err := json.Unmarshal(bytes.TrimSpace(nc.stdout.Bytes()), &res); err != nil {
		e.t.Fatalf("node-consumer.mjs output %q: %v", nc.stdout.Bytes(), err)
	}
	if res.Failed != 0 {
		e.t.Errorf("node-consumer.mjs: %d jobs failed, want 0", res.Failed)
	}
	return e.readKeys(nc.out, res.Completed)
}

// storedKeys returns every idempotency key of audit_log with its row count.
func (e *env) storedKeys(ctx context.Context) map[string]int {
	e.t.Helper()
	rows, err := e.pool.Query(ctx, `SELECT idempotency_key, count(*) FROM audit_log GROUP BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			e.t.Fatal(err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// addOneByOne adds each job alone and waits until a worker has finished it
// before adding the next. The idle workers wait in BZPOPMIN on the queue's
// marker, which Redis serves in the order the workers blocked, so consecutive
// jobs go to different workers. It returns the jobs as fetched afterwards.
func (e *env) addOneByOne(q *bullmq.Queue, datas [][]byte) []*bullmq.Job {
	e.t.Helper()
	ctx := context.Background()
	jobs := make([]*bullmq.Job, len(datas))
	for i, data := range datas {
		id, err := q.Add(ctx, queueName, data, bullmq.JobOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		testenv.Eventually(e.t, 30*time.Second, "job "+id+" to finish", func() bool {
			finished, err := e.rdb.HExists(ctx, q.Keys().Key(id), "finishedOn").Result()
			if err != nil {
				e.t.Fatal(err)
			}
			return finished
		})
		if jobs[i], err = q.GetJob(ctx, id); err != nil {
			e.t.Fatal(err)
		}
	}
	return jobs
}

// processedBy is the worker name a finished job records ("pb").
func (e *env) processedBy(q *bullmq.Queue, id string) string {
	e.t.Helper()
	pb, err := e.rdb.HGet(context.Background(), q.Keys().Key(id), "pb").Result()
	if err != nil {
		e.t.Fatalf("job %s: pb: %v", id, err)
	}
	return pb
}

func jobKey(j *bullmq.Job) string {
	return "bullmq:" + queueName + ":" + j.ID + ":" + strconv.FormatInt(j.Timestamp, 10)
}

// TestManyWorkersOneQueue runs three audit-worker processes and one Node bullmq
// Worker on one queue while AUDIT_E2E_MANY_EVENTS events (default 10000) are
// added. The Node worker stores nothing; it records the jobs it took. Then,
// with the Node worker stopped, five failed logins of one principal and three
// invalid events go to the Go workers one at a time, so that they spread over
// them. It checks that the rows and the Node worker's jobs together cover
// every event exactly once, that each Go worker stored at least 20 % of them,
// that the detectors evaluated each stored event once and raised one
// FAILED_AUTH alert, and that each invalid event was dead-lettered once.
func TestManyWorkersOneQueue(t *testing.T) {
	if testingParallelOK() {
		t.Parallel()
	}
	n := envInt(t, "AUDIT_E2E_MANY_EVENTS", 10000)
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 2, BatchSize: 100})
	e.migrate(cfg)
	workers := e.startGoWorkers(3, cfg)
	nc := e.startNodeConsumer(4)

	start := time.Now()
	res, keys := e.enqueue(n, filepath.Join(e.dir, "ids.txt"))
	t.Logf("enqueued %d events in %d ms while 3 Go workers and 1 Node worker consumed", res.Count, res.ElapsedMs)
	q := bullmq.NewQueue(e.rdb, queueName, bullmq.QueueOptions{Prefix: e.prefix})
	testenv.Eventually(t, 2*time.Minute+time.Duration(n)*time.Millisecond, "the queue to drain", func() bool {
		c, err := e.queueCounts(ctx, queueName)
		if err != nil {
			t.Fatal(err)
		}
		return pending(c) == 0
	})
	drain := time.Since(start)
	nodeKeys := nc.stop(e)

	// Phase two, Go workers only: the alert pattern and the invalid events.
	now := time.Now().UTC()
	var special [][]byte
	for i := range 5 {
		special = append(special, fmt.Appendf(nil,
			`{"timestamp":%q,"action":"auth.login.failure","status":"failure","principalId":"u-e2e-many-attacker","organizationId":"org-e2e","outcomeDescription":"wrong password"}`,
			now.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano)))
	}
	failures := e.addOneByOne(q, special)
	invalid := e.addOneByOne(q, [][]byte{
		[]byte(`{"note":"no timestamp, action or status"}`),
		fmt.Appendf(nil, `{"timestamp":%q,"action":"data.read","status":"not-a-status"}`, now.Format(time.RFC3339Nano)),
		[]byte(`{"timestamp": 12, "action": ["data.read"]}`),
	})

	// Every event: stored once by a Go worker, or taken once by Node.
	stored := e.storedKeys(ctx)
	want := map[string]bool{}
	for k := range keys {
		want[k] = true
	}
	for _, j := range failures {
		want[jobKey(j)] = true
	}
	var missing, overlap, doubled, unknown int
	for k := range want {
		_, inPG := stored[k]
		switch {
		case inPG && nodeKeys[k]:
			overlap++
		case !inPG && !nodeKeys[k]:
			missing++
		}
	}
	for k, c := range stored {
		if c != 1 {
			doubled++
		}
		if !want[k] {
			unknown++
		}
	}
	for k := range nodeKeys {
		if !want[k] {
			unknown++
		}
	}
	t.Logf("%d events: %d rows stored by the Go workers, %d jobs taken by Node; drained in %s (%.0f events/s)",
		len(want), len(stored), len(nodeKeys), drain.Round(time.Millisecond), float64(n)/drain.Seconds())
	if missing+overlap+doubled+unknown > 0 || len(stored)+len(nodeKeys) != len(want) {
		t.Errorf("coverage: %d missing, %d both stored and taken by Node, %d stored twice, %d unknown",
			missing, overlap, doubled, unknown)
	}

	// Per worker: its share, and the detectors' count of what it stored.
	var storedSum, evaluatedSum, rejectedSum, duplicateSum float64
	for _, w := range workers {
		m := w.metrics(t)
		s, ev := m["audit_events_stored_total"], m["audit_monitor_events_evaluated_total"]
		storedSum += s
		evaluatedSum += ev
		rejectedSum += metricSum(m, "audit_events_rejected_total")
		duplicateSum += m["audit_events_duplicate_total"]
		share := s / float64(n)
		t.Logf("%s (pid %d): stored %.0f (%.1f %% of %d), evaluated %.0f", w.name, w.p.pid(), s, 100*share, n, ev)
		if share < 0.20 {
			t.Errorf("%s stored %.1f %% of the events, want at least 20 %%", w.name, 100*share)
		}
	}
	if storedSum != float64(len(stored)) || evaluatedSum != storedSum || duplicateSum != 0 {
		t.Errorf("metrics: stored %.0f, evaluated %.0f, duplicates %.0f; want %d rows, each evaluated once, no duplicate",
			storedSum, evaluatedSum, duplicateSum, len(stored))
	}

	// The failed logins raised one alert. Which workers took them is Redis's
	// choice (usually two or three of them); TestTwoWorkersRaiseOneFailedAuthAlert
	// forces the split.
	takers := map[string]int{}
	failureKeys := map[string]bool{}
	for _, j := range failures {
		takers[e.processedBy(q, j.ID)]++
		failureKeys[jobKey(j)] = true
	}
	t.Logf("the 5 failed logins were processed by %v", takers)
	var alerts []map[string]any
	testenv.Until(10*time.Second, func() bool { // judged below
		alerts = nil
		for _, al := range e.listAlerts(cfg, "--type", "SECURITY") {
			raw, _ := json.Marshal(al)
			if al["title"] == "Suspicious pattern: FAILED_AUTH" && bytes.Contains(raw, []byte("u-e2e-many-attacker")) {
				alerts = append(alerts, al)
			}
		}
		return len(alerts) > 0
	})
	if len(alerts) != 1 {
		t.Fatalf("FAILED_AUTH alerts for the attacker = %d, want 1: %v", len(alerts), alerts)
	}
	var meta struct {
		Count     int      `json:"count"`
		EventKeys []string `json:"eventKeys"`
	}
	raw, _ := json.Marshal(alerts[0]["metadata"])
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Count != 5 || len(meta.EventKeys) != 5 {
		t.Errorf("evidence = %s, want a count of 5 and 5 event keys", raw)
	}
	for _, k := range meta.EventKeys {
		if !failureKeys[k] {
			t.Errorf("evidence key %s is not one of the 5 failed logins", k)
		}
	}
	t.Logf("one FAILED_AUTH alert for 5 failed logins processed by %v", takers)

	// Each invalid event: one dead-letter entry, one failed job.
	e.checkDeadLettered(q, invalid, rejectedSum)
}

// checkDeadLettered asserts that each of the jobs failed once and has exactly
// one dead-letter entry, and that nothing else was dead-lettered.
func (e *env) checkDeadLettered(q *bullmq.Queue, jobs []*bullmq.Job, rejectedMetric float64) {
	e.t.Helper()
	ctx := context.Background()
	dead := bullmq.NewQueue(e.rdb, deadQueueName, bullmq.QueueOptions{Prefix: e.prefix})
	deadCounts, err := dead.Counts(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	mainCounts, err := q.Counts(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var deadTotal int64
	for _, c := range deadCounts {
		deadTotal += c
	}
	var dbRows, dbFailures int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(failure_count), 0) FROM audit_dead_letter`).Scan(&dbRows, &dbFailures); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("dead letters: queue %s %v; main queue failed %d; audit_dead_letter %d rows (%d failures); rejected metric %.0f",
		deadQueueName, deadCounts, mainCounts["failed"], dbRows, dbFailures, rejectedMetric)
	k := int64(len(jobs))
	if deadTotal != k || mainCounts["failed"] != k || rejectedMetric != float64(k) {
		e.t.Errorf("dead letters: %d entries, %d failed jobs, rejected metric %.0f; want %d each", deadTotal, mainCounts["failed"], rejectedMetric, k)
	}
	if dbRows != 0 && (dbRows != k || dbFailures != k) {
		e.t.Errorf("audit_dead_letter: %d rows, %d failures; want %d, %d", dbRows, dbFailures, k, k)
	}
	for _, j := range jobs {
		reason, err := e.rdb.HGet(ctx, q.Keys().Key(j.ID), "failedReason").Result()
		if err != nil || reason == "" {
			e.t.Errorf("invalid job %s: failedReason %q (%v), want the refusal", j.ID, reason, err)
		}
	}
}

// TestManyWorkersKillOne runs three audit-worker processes with short locks
// (AUDIT_E2E_LOCK_MS, default 5000 here) on a queue filled with
// AUDIT_E2E_MANY_EVENTS events, SIGKILLs one of them after 30 % of the rows
// are stored, and checks that the jobs it
// held come back as stalled to the other two and that every event is stored
// exactly once.
func TestManyWorkersKillOne(t *testing.T) {
	if testingParallelOK() {
		t.Parallel()
	}
	n := envInt(t, "AUDIT_E2E_MANY_EVENTS", 10000)
	lock := lockMs(t)
	if lock == 0 {
		lock = 5000
	}
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 2, BatchSize: 100, LockMs: lock})
	e.migrate(cfg)
	// A full queue keeps every worker holding jobs, the victim too.
	_, keys := e.enqueue(n, filepath.Join(e.dir, "ids.txt"))
	workers := e.startGoWorkers(3, cfg)

	victim := workers[0]
	var rows int64
	testenv.EventuallyNil(t, 2*time.Minute+time.Duration(n)*time.Millisecond, func() error {
		var err error
		if rows, err = e.rowCount(ctx); err != nil {
			t.Fatal(err)
		}
		if rows >= int64(n)*3/10 && victim.metrics(t)["audit_events_stored_total"] > 0 {
			return nil
		}
		return fmt.Errorf("only %d/%d rows", rows, n)
	})
	victim.p.kill(t)
	killedAt := time.Now()
	t.Logf("SIGKILL %s (pid %d) at %d/%d rows", victim.name, victim.p.pid(), rows, n)

	e.waitDrained(int64(n), 2*time.Minute+time.Duration(n)*time.Millisecond, victim.logPath)
	drained := time.Since(killedAt)
	var recovered, duplicates float64
	var firstRecovery time.Time
	for _, w := range workers[1:] {
		j, at := recoveredStalled(t, w.logPath, killedAt)
		recovered += float64(j)
		if !at.IsZero() && (firstRecovery.IsZero() || at.Before(firstRecovery)) {
			firstRecovery = at
		}
		duplicates += w.metrics(t)["audit_events_duplicate_total"]
	}
	e.checkStored(keys)
	e.checkRedisClean()
	if recovered == 0 {
		t.Fatalf("no surviving worker recovered a stalled job: the kill did not exercise the recovery")
	}
	recovery := firstRecovery.Sub(killedAt)
	t.Logf("stalled jobs recovered: %.0f, %s after the kill (lock %d ms); duplicates found by the store %.0f; drained %s after the kill",
		recovered, recovery.Round(time.Millisecond), lock, duplicates, drained.Round(time.Millisecond))
	if bound := 2*time.Duration(lock)*time.Millisecond + 5*time.Second; recovery > bound {
		t.Errorf("stalled jobs recovered %s after the kill, want within %s (twice the lock, plus 5 s)", recovery, bound)
	}
}

// TestManyWorkersScaling runs only with AUDIT_E2E_MANY_SCALING=1: for 1, 2
// and 3 worker processes it fills a queue with AUDIT_E2E_MANY_EVENTS events
// (on a redis-server of its own, so that Redis's CPU time is the queue's
// alone), starts the workers, and reports the drain rate between 10 % and 90 %
// of the rows and the share of one core Redis used meanwhile (INFO cpu): when
// that share nears 1, Redis is what limits the queue.
func TestManyWorkersScaling(t *testing.T) {
	if os.Getenv("AUDIT_E2E_MANY_SCALING") != "1" {
		t.Skip("set AUDIT_E2E_MANY_SCALING=1 to measure the drain rate with 1, 2 and 3 workers")
	}
	n := envInt(t, "AUDIT_E2E_MANY_EVENTS", 10000)
	redisURL := startRedisServer(t)
	for k := 1; k <= 3; k++ {
		t.Run(fmt.Sprintf("workers=%d", k), func(t *testing.T) {
			e := newEnv(t)
			e.useRedis(redisURL)
			ctx := context.Background()
			cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 2, BatchSize: 250})
			e.migrate(cfg)
			e.enqueue(n, filepath.Join(e.dir, "ids.txt"))
			workers := e.startGoWorkers(k, cfg)
			lo, hi := int64(n)/10, int64(n)*9/10
			mark := func(rows int64) (time.Time, float64) {
				testenv.EventuallyNil(t, 5*time.Minute+time.Duration(n)*time.Millisecond, func() error {
					got, err := e.rowCount(ctx)
					if err == nil && got < rows {
						err = fmt.Errorf("%d/%d rows", got, rows)
					}
					return err
				})
				return time.Now(), redisCPUSeconds(t, e)
			}
			t0, cpu0 := mark(lo)
			t1, cpu1 := mark(hi)
			wall := t1.Sub(t0).Seconds()
			t.Logf("%d worker(s), %d events: %.0f events/s between 10 %% and 90 %% of the rows; Redis used %.2f of a core (%.0f µs per event)",
				k, n, float64(hi-lo)/wall, (cpu1-cpu0)/wall, 1e6*(cpu1-cpu0)/float64(hi-lo))
			e.waitDrained(int64(n), 5*time.Minute, workers[0].logPath)
		})
	}
}

// startRedisServer starts a redis-server of the test's own on a free port.
func startRedisServer(t *testing.T) string {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Unavailable(t, "redis-server", "apt-get install redis-server", err)
	}
	port := freePortPair(t)
	cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	opts, _ := redis.ParseURL(url)
	probe := redis.NewClient(opts)
	defer probe.Close()
	testenv.Eventually(t, 20*time.Second, "redis-server on port "+strconv.Itoa(port), func() bool {
		return probe.Ping(context.Background()).Err() == nil
	})
	return url
}

// useRedis points the environment (its client, the workers' configuration and
// the Node scripts) at another Redis.
func (e *env) useRedis(url string) {
	e.t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		e.t.Fatal(err)
	}
	old := e.rdb
	e.redisURL, e.rdb = url, redis.NewClient(opts)
	_ = old.Close()
}

// redisCPUSeconds is the CPU time (user + system) Redis has used so far.
func redisCPUSeconds(t testing.TB, e *env) float64 {
	t.Helper()
	info, err := e.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}
