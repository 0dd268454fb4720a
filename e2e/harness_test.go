package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// ingestKey is the workers' HTTP API key.
const ingestKey = "e2e-ingest-key-0123456789"

// operatorKey is an operator's key: the metrics details and pprof.
const operatorKey = "e2e-operator-key-0123456789"

const (
	queueName      = "audit-events"
	deadQueueName  = "audit-events-failed"
	npmInstall     = "npm ci --prefix interop --no-audit --no-fund"
	readyLogMsg    = "consuming BullMQ queue"
	workerStartMax = 60 * time.Second
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// moduleRoot walks up from the working directory to the directory of go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatal("go.mod not found above the working directory")
	return ""
}

// workerBinary builds ./cmd/audit-worker once per test process.
func workerBinary(t testing.TB, root string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "audit-e2e-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "audit-worker")
		goCmd, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCmd, "build", "-o", binPath, "./cmd/audit-worker")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/audit-worker: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// requireNode skips (or fails, with AUDIT_TEST_REQUIRE_SERVICES=1) without node
// or without the bullmq package installed in interop/node_modules.
func requireNode(t testing.TB, root string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node (with interop/node_modules)", "install Node >= 20, then "+npmInstall, err)
	}
	if _, err := os.Stat(filepath.Join(root, "interop", "node_modules", "bullmq", "package.json")); err != nil {
		testenv.Unavailable(t, "the bullmq npm package (interop/node_modules)", npmInstall, err)
	}
}

// env is one test's (or benchmark phase's) services: its own database, its own
// Redis key prefix, the built binary, and a scratch directory.
type env struct {
	t        testing.TB
	root     string
	bin      string
	dir      string
	pgURL    string
	pool     *pgxpool.Pool
	redisURL string
	rdb      *redis.Client
	prefix   string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	root := moduleRoot(t)
	redisURL := testenv.RedisURL(t)
	pgURL := testenv.PostgresDatabase(t)
	requireNode(t, root)
	e := &env{t: t, root: root, dir: t.TempDir(), pgURL: pgURL, redisURL: redisURL, prefix: testenv.RedisKeyPrefix(t)}
	e.bin = workerBinary(t, root)
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(opts)
	t.Cleanup(e.cleanRedis)
	pcfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.MaxConns = 2
	e.pool, err = pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pool.Close) // before the database is dropped (cleanups run last in, first out)
	return e
}

// cleanRedis deletes every key under the test's prefix.
func (e *env) cleanRedis() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys []string
	var err error
	// The queues' keys, and the pattern detectors' (hash-tagged: "{<prefix>:…}").
	for _, pattern := range []string{e.prefix + ":*", "{" + e.prefix + ":*"} {
		iter := e.rdb.Scan(ctx, 0, pattern, 5000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		err = errors.Join(err, iter.Err())
	}
	for len(keys) > 0 && err == nil {
		n := min(len(keys), 1000)
		err = e.rdb.Unlink(ctx, keys[:n]...).Err()
		keys = keys[n:]
	}
	if err != nil {
		e.t.Logf("clean up keys %s:*: %v", e.prefix, err)
	}
	_ = e.rdb.Close()
}

// workerConfig is the configuration file the worker runs with.
type workerConfig struct {
	PostgresURL string // default: the test database
	Concurrency int
	BatchSize   int
	// LockMs, when > 0, sets reliableProcessor.lockDurationMs and
	// stalledIntervalMs (else the worker's defaults, BullMQ's 30 s each).
	LockMs int
	// MonitoringOff turns the pattern detectors and system alerts off.
	MonitoringOff bool
	// PatternState sets monitoring.patternDetection.state ("" = the default).
	PatternState string
	// Profiling serves /debug/pprof (observability.profiling.enabled).
	Profiling bool
	// TimeZone sets monitoring.patternDetection.timeZone ("" = the default).
	TimeZone string
	// CheckpointsOff turns the Merkle tree integrator and its checkpoints off
	// (security.checkpoint.enabled false).
	CheckpointsOff bool
}

// lockMs is AUDIT_E2E_LOCK_MS: the lock duration and stalled interval the
// crash tests give the worker (0 = the worker's defaults, 30000 ms each).
func lockMs(t testing.TB) int {
	if os.Getenv("AUDIT_E2E_LOCK_MS") == "" {
		return 0
	}
	return envInt(t, "AUDIT_E2E_LOCK_MS", 0)
}

func (e *env) writeConfig(name string, wc workerConfig) string {
	e.t.Helper()
	if wc.PostgresURL == "" {
		wc.PostgresURL = e.pgURL
	}
	cfg := map[string]any{
		"redis":          map[string]any{"url": e.redisURL, "keyPrefix": e.prefix},
		"enhancedClient": map[string]any{"connectionString": wc.PostgresURL, "maxConnections": 10},
		"reliableProcessor": map[string]any{
			"queueName":            queueName,
			"concurrency":          wc.Concurrency,
			"batchSize":            wc.BatchSize,
			"circuitBreakerConfig": map[string]any{"failureThreshold": 5, "recoveryTimeout": 1000},
			"deadLetterConfig":     map[string]any{"queueName": deadQueueName},
		},
		"worker": map[string]any{"port": 3001, "shutdownTimeout": 10000},
		"http": map[string]any{"address": "127.0.0.1:0", "apiKeys": []string{ingestKey},
			"keys": []map[string]any{{"name": "e2e-operator", "key": operatorKey, "role": "operator", "organizations": []string{"*"}}}},
		"storage": map[string]any{"dataDir": filepath.Join(e.dir, "data")},
		"logging": map[string]any{"format": "json", "level": "info"},
	}
	if wc.CheckpointsOff {
		cfg["security"] = map[string]any{"checkpoint": map[string]any{"enabled": false}}
	}
	if wc.MonitoringOff {
		cfg["monitoring"] = map[string]any{"enabled": false}
	} else {
		detection := map[string]any{}
		if wc.PatternState != "" {
			detection["state"] = wc.PatternState
		}
		if wc.TimeZone != "" {
			detection["timeZone"] = wc.TimeZone
		}
		if len(detection) > 0 {
			cfg["monitoring"] = map[string]any{"patternDetection": detection}
		}
	}
	if wc.Profiling {
		cfg["observability"] = map[string]any{"profiling": map[string]any{"enabled": true}}
	}
	if wc.LockMs > 0 {
		rp := cfg["reliableProcessor"].(map[string]any)
		rp["lockDurationMs"], rp["stalledIntervalMs"] = wc.LockMs, wc.LockMs
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// proc is a running worker process. Its stderr (the JSON log) goes to logPath,
// shared by every run of the test.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	err     error // valid after done
}

// startWorker starts the binary with the configuration file and waits until it
// consumes the queue.
func (e *env) startWorker(cfgPath, logPath string) *proc {
	e.t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	offset := st.Size()
	fmt.Fprintf(f, "----- e2e: starting worker at %s -----\n", time.Now().Format(time.RFC3339Nano))
	cmd := e.command(context.Background(), "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(cmd.Env, "LOG_LEVEL=info")
	p := &proc{cmd: cmd, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start worker: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() { p.stop(e.t, 15*time.Second) })
	ready := testenv.Until(workerStartMax, func() bool {
		if logContains(logPath, offset, readyLogMsg) {
			return true
		}
		select {
		case <-p.done:
			e.t.Fatalf("worker exited during start-up: %v\n%s", p.err, tail(logPath, 40))
		default:
		}
		return false
	})
	if !ready {
		e.t.Fatalf("worker not consuming after %s\n%s", workerStartMax, tail(logPath, 40))
	}
	return p
}

// command runs the worker binary with its configuration cache in the test's
// directory (by default it would land in the package directory).
func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "AUDIT_CONFIG_CACHE="+filepath.Join(e.dir, "config-cache.json"))
	return cmd
}

// migrate runs "audit-worker migrate" with the configuration file, so that a
// timed start does not include creating the schema.
func (e *env) migrate(cfgPath string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.command(ctx, "--config", cfgPath, "migrate").CombinedOutput()
	if err != nil {
		e.t.Fatalf("audit-worker migrate: %v\n%s", err, out)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// workerURL is the base URL the worker logged when it started (pid's last start).
func workerURL(t testing.TB, logPath string) string {
	t.Helper()
	url := ""
	for _, m := range logEntries(t, logPath) {
		if m["msg"] == "audit worker started" {
			url, _ = m["http"].(string)
		}
	}
	if url == "" {
		t.Fatalf("no start line with the HTTP address in %s", logPath)
	}
	return url
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("worker still running 10 s after SIGKILL")
	}
}

// stop asks for a graceful shutdown (SIGTERM), escalating to SIGKILL after
// timeout; it returns the process's exit error (nil for exit status 0).
func (p *proc) stop(t testing.TB, timeout time.Duration) error {
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Logf("worker %d did not stop within %s of SIGTERM: killing it", p.pid(), timeout)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return errors.New("killed after the shutdown timeout")
	}
}

// peakRSSKiB reads VmHWM (the peak resident set size) of a running process.
func peakRSSKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/pid/status")
}

func logContains(path string, offset int64, s string) bool {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return false
	}
	return bytes.Contains(data[offset:], []byte(s))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dumpLogOnFailure prints the tail of the worker log when the test failed.
func dumpLogOnFailure(t testing.TB, logPath string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log %s (last 80 lines):\n%s", logPath, tail(logPath, 80))
		}
	})
}

// logEntries decodes the JSON lines of the worker log (skipping our markers).
func logEntries(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// nodeCmd builds the command running e2e/node/<script> against the test's
// prefix and queue.
func (e *env) nodeCmd(ctx context.Context, script, queue string, args ...string) *exec.Cmd {
	all := append([]string{filepath.Join(e.root, "e2e", "node", script),
		"--redis", e.redisURL, "--prefix", e.prefix, "--queue", queue}, args...)
	cmd := exec.CommandContext(ctx, "node", all...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// node runs a script to its end and decodes its JSON output into out.
func (e *env) node(timeout time.Duration, out any, script string, args ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := e.nodeCmd(ctx, script, queueName, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout.Bytes(), stderr.Bytes())
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), out); err != nil {
		e.t.Fatalf("node %s: decode output: %v\nstdout: %s\nstderr: %s", script, err, stdout.Bytes(), stderr.Bytes())
	}
}

// produced is what produce.mjs or stream.mjs reports.
type produced struct {
	Count       int   `json:"count"`
	ElapsedMs   int64 `json:"elapsedMs"`
	OfferedRate int64 `json:"offeredRate"`
	MaxBehind   int64 `json:"maxBehind"`
}

// enqueue adds n events with addBulk (chunks of 1000) and returns the
// idempotency keys the worker will give them.
func (e *env) enqueue(n int, idsFile string) (produced, map[string]bool) {
	e.t.Helper()
	var res produced
	e.node(2*time.Minute+time.Duration(n)*time.Millisecond, &res, "produce.mjs",
		"--count", strconv.Itoa(n), "--chunk", "1000", "--out", idsFile, "--watchdog-ms", strconv.Itoa(110000+n))
	if res.Count != n {
		e.t.Fatalf("produce.mjs added %d jobs, want %d", res.Count, n)
	}
	return res, e.readKeys(idsFile, n)
}

// readKeys reads the "id timestamp" lines a producer wrote and returns the
// idempotency keys (bullmq:<queue>:<id>:<timestamp>) the worker must store.
func (e *env) readKeys(path string, want int) map[string]bool {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	keys := make(map[string]bool, want)
	for line := range strings.Lines(string(data)) {
		id, ts, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			e.t.Fatalf("%s: bad line %q", path, line)
		}
		key := "bullmq:" + queueName + ":" + id + ":" + ts
		if keys[key] {
			e.t.Fatalf("%s: job %s listed twice", path, id)
		}
		keys[key] = true
	}
	if len(keys) != want {
		e.t.Fatalf("%s lists %d jobs, want %d", path, len(keys), want)
	}
	return keys
}

func (e *env) rowCount(ctx context.Context) (int64, error) {
	var n int64
	// The worker's own access records (a test's authenticated GET leaves one)
	// are not the producers' events.
	err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action NOT LIKE 'audit.access.%'`).Scan(&n)
	return n, err
}

// idsIssued is how many ids audit_log's sequence has handed out: an upper
// bound of the rows stored (ON CONFLICT skips and rollbacks use ids too) that
// costs nothing to read, unlike count(*).
func (e *env) idsIssued(ctx context.Context) (int64, error) {
	var last int64
	var called bool
	err := e.pool.QueryRow(ctx, `SELECT last_value, is_called FROM audit_log_id_seq`).Scan(&last, &called)
	if !called {
		return 0, err
	}
	return last, err
}

// queueCounts returns the length of every state list/set of a queue.
func (e *env) queueCounts(ctx context.Context, queue string) (map[string]int64, error) {
	base := e.prefix + ":" + queue + ":"
	pipe := e.rdb.Pipeline()
	cmds := map[string]*redis.IntCmd{}
	for _, s := range []string{"wait", "active", "paused"} {
		cmds[s] = pipe.LLen(ctx, base+s)
	}
	for _, s := range []string{"delayed", "prioritized", "failed", "completed"} {
		cmds[s] = pipe.ZCard(ctx, base+s)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for s, c := range cmds {
		out[s] = c.Val()
	}
	return out, nil
}

// pending is how many jobs of the main queue are not finished yet.
func pending(c map[string]int64) int64 {
	return c["wait"] + c["active"] + c["paused"] + c["delayed"] + c["prioritized"]
}

// waitDrained polls until PostgreSQL holds want rows and the main queue has no
// unfinished job, or fails after timeout.
func (e *env) waitDrained(want int64, timeout time.Duration, logPath string) {
	e.t.Helper()
	ctx := context.Background()
	start := time.Now()
	lastLog := start
	var rows int64
	var counts map[string]int64
	drained := testenv.Until(timeout, func() bool {
		var err error
		rows, err = e.rowCount(ctx)
		if err == nil {
			counts, err = e.queueCounts(ctx, queueName)
		}
		if err == nil && rows == want && pending(counts) == 0 {
			return true
		}
		if time.Since(lastLog) >= 10*time.Second {
			e.t.Logf("waiting: %d/%d rows, queue %v (err %v), %s elapsed", rows, want, counts, err, time.Since(start).Round(time.Second))
			lastLog = time.Now()
		}
		return false
	})
	if drained {
		e.t.Logf("drained: %d rows, queue %v, after %s", rows, counts, time.Since(start).Round(time.Millisecond))
		return
	}
	e.logBusySessions()
	e.t.Fatalf("not drained after %s: %d/%d rows, queue %v", timeout, rows, want, counts)
}

// logBusySessions logs the test database's sessions that are not idle: what
// a stuck store is waiting for.
func (e *env) logBusySessions() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := e.pool.Query(ctx, `SELECT pid, state, coalesce(wait_event_type, ''), coalesce(wait_event, ''),
		coalesce(extract(epoch FROM now() - xact_start), 0)::float8, left(query, 160)
		FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()`)
	if err != nil {
		e.t.Logf("pg_stat_activity: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var state, waitType, wait, query string
		var xactSecs float64
		if err := rows.Scan(&pid, &state, &waitType, &wait, &xactSecs, &query); err == nil {
			e.t.Logf("session %d %s, waiting on %s/%s, transaction open %.1f s: %s", pid, state, waitType, wait, xactSecs, query)
		}
	}
}

// checkStored asserts that audit_log holds exactly the jobs' keys, once each,
// and that no dead letter was written anywhere.
func (e *env) checkStored(keys map[string]bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var total, distinct, deadRows int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT idempotency_key) FROM audit_log`).Scan(&total, &distinct); err != nil {
		e.t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit_dead_letter`).Scan(&deadRows); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("PostgreSQL: count(*) = %d, count(distinct idempotency_key) = %d, audit_dead_letter = %d (want %d, %d, 0)",
		total, distinct, deadRows, len(keys), len(keys))
	if total != int64(len(keys)) || distinct != int64(len(keys)) || deadRows != 0 {
		e.t.Errorf("PostgreSQL holds %d rows with %d distinct keys and %d dead letters, want %d, %d, 0",
			total, distinct, deadRows, len(keys), len(keys))
	}
	rows, err := e.pool.Query(ctx, `SELECT idempotency_key, count(*) FROM audit_log GROUP BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	seen := make(map[string]bool, len(keys))
	var unknown, dup []string
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			e.t.Fatal(err)
		}
		seen[k] = true
		if !keys[k] && len(unknown) < 5 {
			unknown = append(unknown, k)
		}
		if n != 1 && len(dup) < 5 {
			dup = append(dup, fmt.Sprintf("%s x%d", k, n))
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	var missing []string
	nMissing := 0
	for k := range keys {
		if !seen[k] {
			nMissing++
			if len(missing) < 5 {
				missing = append(missing, k)
			}
		}
	}
	if nMissing > 0 || len(unknown) > 0 || len(dup) > 0 {
		e.t.Errorf("job ids vs rows: %d missing (e.g. %v), unknown keys %v, duplicated keys %v", nMissing, missing, unknown, dup)
	} else {
		e.t.Logf("every one of the %d Node job ids appears exactly once in audit_log", len(keys))
	}
}

// checkRedisClean asserts that the main queue has nothing unfinished or failed
// and that the dead-letter queue is empty.
func (e *env) checkRedisClean() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	main, err := e.queueCounts(ctx, queueName)
	if err != nil {
		e.t.Fatal(err)
	}
	dead, err := e.queueCounts(ctx, deadQueueName)
	if err != nil {
		e.t.Fatal(err)
	}
	var deadKeys int
	iter := e.rdb.Scan(ctx, 0, e.prefix+":"+deadQueueName+":*", 1000).Iterator()
	for iter.Next(ctx) {
		deadKeys++
	}
	if err := iter.Err(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("Redis: queue %s %v; dead-letter queue %s %v, %d keys", queueName, main, deadQueueName, dead, deadKeys)
	for _, s := range []string{"wait", "active", "paused", "delayed", "prioritized", "failed"} {
		if main[s] != 0 {
			e.t.Errorf("queue %s: %d jobs %s, want 0", queueName, main[s], s)
		}
	}
	if pending(dead)+dead["completed"]+dead["failed"] != 0 || deadKeys != 0 {
		e.t.Errorf("dead-letter queue %s not empty: %v, %d keys", deadQueueName, dead, deadKeys)
	}
}

// envInt reads a positive integer from the environment.
func envInt(t testing.TB, name string, dflt int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return dflt
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// withHost returns the PostgreSQL URL with its host:port replaced.
func withHost(t testing.TB, raw, hostport string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// hostPort returns the host:port of a URL, with the PostgreSQL default port.
func hostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return u.Hostname() + ":5432"
	}
	return u.Host
}
