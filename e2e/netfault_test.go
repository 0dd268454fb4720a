package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/internal/faultproxy"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
)

// faultCase is one network fault between the worker and Redis or PostgreSQL.
type faultCase struct {
	name     string
	service  string // "redis" or "postgres": whose proxy gets the fault
	injected string // what is injected, for the results table
	inject   func(p *faultproxy.Proxy)
	// unreachable: /readyz must report the service down during the fault.
	unreachable bool
	// storeFails: the store's circuit breaker must open during the fault.
	storeFails bool
}

// cutBudget is how many more bytes a connection may send to the server once
// a cut begins: enough for a connection's handshake, so that most resets land
// inside a command (a Lua script call, a COPY) instead of between two.
const cutBudget = 512

func faultCases() []faultCase {
	var cases []faultCase
	for _, svc := range []string{"redis", "postgres"} {
		cases = append(cases,
			faultCase{name: svc + "/latency-50ms", service: svc, injected: "50 ms each way",
				inject: func(p *faultproxy.Proxy) { p.Latency(faultproxy.Both, 50*time.Millisecond) }},
			faultCase{name: svc + "/latency-500ms", service: svc, injected: "500 ms each way",
				inject: func(p *faultproxy.Proxy) { p.Latency(faultproxy.Both, 500*time.Millisecond) }},
			faultCase{name: svc + "/loss-1pct", service: svc, injected: "1 % of chunks stall 200 ms–1 s, each way",
				inject: func(p *faultproxy.Proxy) { p.Loss(faultproxy.Both, 0.01) }},
			faultCase{name: svc + "/cut-mid-command", service: svc,
				injected: fmt.Sprintf("RST after %d more bytes, on every connection", cutBudget),
				inject: func(p *faultproxy.Proxy) {
					p.Cut(faultproxy.Cut{AfterBytes: cutBudget, Count: faultproxy.Upstream, New: faultproxy.BudgetNew})
				},
				storeFails: svc == "postgres"},
			faultCase{name: svc + "/blackhole", service: svc, injected: "accepts, reads, never answers",
				inject: func(p *faultproxy.Proxy) { p.Blackhole(faultproxy.Both) }, unreachable: true},
		)
	}
	return cases
}

// faultResult is one row of the results table.
type faultResult struct {
	name, injected                     string
	fault                              time.Duration
	sent, stored, duplicated, deadRows int64
	deadJobs                           int64
	notReady, breakerOpen              bool
	drain, healthy, recovery           time.Duration
}

// TestNetworkFaults runs the worker with Redis and PostgreSQL behind
// fault-injecting proxies (Node producers reach Redis directly) and, for each
// case, injects the fault, lets a producer add AUDIT_E2E_FAULT_EVENTS events
// (default 2000) over AUDIT_E2E_FAULT_SECONDS (default 3) while it lasts, ends
// it, and checks: every event stored exactly once, nothing left waiting or
// active, no dead letter; /readyz and the circuit breaker saying what is
// really down, and healthy again; recovery (fault end → backlog drained and
// health green) within a bound. AUDIT_E2E_FAULT_TABLE=FILE writes the results
// table to FILE; AUDIT_E2E_FAULT_CASES=TEXT runs only the cases whose name
// contains TEXT. With AUDIT_E2E_FAULT_SECONDS over 65, the PostgreSQL
// blackhole outlasts two store timeouts and must open the breaker.
func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	events := envInt(t, "AUDIT_E2E_FAULT_EVENTS", 2000)
	faultFor := time.Duration(envInt(t, "AUDIT_E2E_FAULT_SECONDS", 3)) * time.Second
	// Generous for a shared 2-core host: the stalled-job recovery of jobs whose
	// fetch reply was lost takes up to two 5 s lock periods; the backlog drains
	// at well over 1000 events/s.
	recoveryMax := 30*time.Second + time.Duration(events)*time.Millisecond

	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	ropts, err := redis.ParseURL(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	proxies := map[string]*faultproxy.Proxy{
		"redis":    startProxy(t, ropts.Addr),
		"postgres": startProxy(t, hostPort(t, e.pgURL)),
	}
	cfg := e.writeConfig("worker.json", workerConfig{
		PostgresURL: withHost(t, e.pgURL, proxies["postgres"].Addr()),
		Concurrency: 3, BatchSize: 250, LockMs: 5000, MonitoringOff: true,
	})
	setRedisURL(t, cfg, withHost(t, e.redisURL, proxies["redis"].Addr()))
	w := e.startWorker(cfg, logPath)
	pid := w.pid()
	// The HTTP server's start line comes shortly after the consumer's.
	if !testenv.Until(30*time.Second, func() bool { return logContains(logPath, 0, `"msg":"audit worker started"`) }) {
		t.Fatal("the worker logged no HTTP address")
	}
	health := &healthProbe{base: workerURL(t, logPath), client: &http.Client{Timeout: 5 * time.Second}}
	if !testenv.Until(30*time.Second, health.green) {
		t.Fatal("the worker is not ready, or its breaker not closed, before any fault")
	}

	allKeys := map[string]bool{}
	var results []faultResult
	// The cases run one after the other in the test itself, not as subtests:
	// they share the worker, and the env's helpers fail the test that made it.
	only := os.Getenv("AUDIT_E2E_FAULT_CASES")
	for i, c := range faultCases() {
		if only != "" && !strings.Contains(c.name, only) {
			continue
		}
		// A blackhole that outlasts two rounds of store timeouts fails enough
		// batches (3 at a time) to open the breaker (threshold 5).
		if c.service == "postgres" && c.unreachable && faultFor > 2*pipeline.DefaultStoreTimeout+5*time.Second {
			c.storeFails = true
		}
		res, recovered := runFaultCase(t, e, logPath, health, proxies[c.service], c, i, events, faultFor, recoveryMax, allKeys)
		results = append(results, res)
		if !recovered || w.exited() {
			t.Errorf("stopping after %s: the next cases would start with its backlog", c.name)
			break
		}
	}
	if w.exited() || w.pid() != pid {
		t.Fatalf("the worker did not survive the faults: %v", w.err)
	}
	if err := w.stop(t, 15*time.Second); err != nil {
		t.Errorf("worker did not stop cleanly on SIGTERM: %v", err)
	}
	e.checkStored(allKeys)
	e.checkRedisClean()
	table := faultTable(results, events, faultFor)
	t.Logf("results:\n%s", table)
	if path := os.Getenv("AUDIT_E2E_FAULT_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
}

// runFaultCase runs one case against the shared worker and asserts its outcome.
func runFaultCase(t *testing.T, e *env, logPath string, health *healthProbe, proxy *faultproxy.Proxy, c faultCase, idx, events int,
	faultFor, recoveryMax time.Duration, allKeys map[string]bool) (faultResult, bool) {
	t.Helper()
	ctx := context.Background()
	res := faultResult{name: c.name, injected: c.injected, sent: int64(events)}
	deadBefore := e.deadLetterRows(t)

	watch := health.watch()
	faultStart := time.Now()
	c.inject(proxy)
	idsFile := filepath.Join(e.dir, fmt.Sprintf("ids-%d.txt", idx))
	rate := max(1, int(float64(events)/faultFor.Seconds()))
	var out produced
	e.node(faultFor+2*time.Minute, &out, "stream.mjs", "--rate", strconv.Itoa(rate),
		"--duration-ms", strconv.FormatInt(faultFor.Milliseconds(), 10), "--out", idsFile,
		"--watchdog-ms", strconv.FormatInt((faultFor+110*time.Second).Milliseconds(), 10))
	if rest := faultFor - time.Since(faultStart); rest > 0 {
		time.Sleep(rest) // the producer started late: the fault still lasts faultFor
	}
	keys := e.readKeys(idsFile, out.Count)
	restoreProxy(t, proxy)
	faultEnd := time.Now()
	res.fault = faultEnd.Sub(faultStart)
	res.sent = int64(out.Count)
	for k := range keys {
		allKeys[k] = true
	}

	// Recovery: the backlog drained (every key stored, nothing waiting or
	// active) and the health endpoints green.
	wantRows := int64(len(allKeys))
	var rows int64
	var counts map[string]int64
	var drainedAt, healthyAt time.Time
	recovered := testenv.Until(recoveryMax, func() bool {
		now := time.Now()
		if drainedAt.IsZero() {
			var err error
			if rows, err = e.rowCount(ctx); err == nil {
				counts, err = e.queueCounts(ctx, queueName)
			}
			if err == nil && rows >= wantRows && pending(counts) == 0 {
				drainedAt = now
			}
		}
		if healthyAt.IsZero() && health.green() {
			healthyAt = now
		}
		return !drainedAt.IsZero() && !healthyAt.IsZero()
	})
	seen := watch.stop()
	res.notReady = seen.notReady
	if !drainedAt.IsZero() {
		res.drain = drainedAt.Sub(faultEnd)
	}
	if !healthyAt.IsZero() {
		res.healthy = healthyAt.Sub(faultEnd)
	}
	res.recovery = max(res.drain, res.healthy)
	if !recovered {
		e.logBusySessions()
		t.Errorf("%s: not recovered %s after the fault ended: %d/%d rows, queue %v, drained after %s, healthy after %s",
			c.name, recoveryMax, rows, wantRows, counts, res.drain, res.healthy)
	}

	// Exactly once, no dead letters.
	keyList := slices.Collect(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	var total int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT idempotency_key) FROM audit_log WHERE idempotency_key = ANY($1)`,
		keyList).Scan(&total, &res.stored); err != nil {
		t.Fatal(err)
	}
	res.duplicated = total - res.stored
	res.deadRows = e.deadLetterRows(t) - deadBefore
	dead, err := e.queueCounts(ctx, deadQueueName)
	if err != nil {
		t.Fatal(err)
	}
	res.deadJobs = pending(dead) + dead["completed"] + dead["failed"]
	if res.stored != res.sent || res.duplicated != 0 || res.deadRows != 0 || res.deadJobs != 0 {
		t.Errorf("%s: sent %d, stored %d distinct, %d duplicated, %d dead letters in PostgreSQL, %d in Redis: want %d, 0, 0, 0",
			c.name, res.sent, res.stored, res.duplicated, res.deadRows, res.deadJobs, res.sent)
	}

	// The health endpoints tell the truth.
	other := map[string]string{"redis": "database", "postgres": "redis"}[c.service]
	mine := map[string]string{"redis": "redis", "postgres": "database"}[c.service]
	if c.unreachable && !seen.reasons[mine] {
		t.Errorf("%s: /readyz never reported %s down while it was blackholed (reasons seen: %v)", c.name, mine, seen.reasons)
	}
	if seen.reasons[other] {
		t.Errorf("%s: /readyz blamed %s, which had no fault (reasons seen: %v)", c.name, other, seen.reasons)
	}
	opened := breakerOpenedBetween(t, logPath, faultStart, faultEnd)
	res.breakerOpen = opened
	if c.service == "redis" && (opened || seen.breakerBad) {
		t.Errorf("%s: the store's circuit breaker left CLOSED during a Redis fault (log: opened %v; endpoint: not OK %v)",
			c.name, opened, seen.breakerBad)
	}
	if c.storeFails && !opened {
		t.Errorf("%s: the circuit breaker never opened while PostgreSQL failed every store call", c.name)
	}
	if opened && !seen.breakerBad {
		t.Errorf("%s: the breaker opened (log) but /health/circuit-breaker said OK throughout", c.name)
	}
	t.Logf("%s: fault %s, proxy %+v; readyz down: %v (reasons %v), breaker opened (log) %v, /health/circuit-breaker not OK %v (CRITICAL %v); drained %s and healthy %s after the fault; stored %d/%d, duplicated %d, dead letters %d+%d",
		c.name, res.fault.Round(time.Millisecond), proxy.Stats(), seen.notReady, seen.reasons, opened, seen.breakerBad, seen.breakerOpen,
		res.drain.Round(time.Millisecond), res.healthy.Round(time.Millisecond), res.stored, res.sent, res.duplicated, res.deadRows, res.deadJobs)
	return res, recovered
}

// breakerOpenedBetween reports whether the worker log shows the circuit
// breaker going OPEN between from and to.
func breakerOpenedBetween(t testing.TB, logPath string, from, to time.Time) bool {
	t.Helper()
	for _, m := range logEntries(t, logPath) {
		if m["msg"] != "circuit breaker changed state" || m["to"] != "OPEN" {
			continue
		}
		ts, _ := m["time"].(string)
		if when, err := time.Parse(time.RFC3339Nano, ts); err == nil && !when.Before(from) && !when.After(to) {
			return true
		}
	}
	return false
}

// setRedisURL points the worker's configuration file at another Redis URL.
func setRedisURL(t testing.TB, cfgPath, url string) {
	t.Helper()
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["redis"].(map[string]any)["url"] = url
	if data, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// deadLetterRows counts audit_dead_letter.
func (e *env) deadLetterRows(t testing.TB) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_dead_letter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// healthProbe reads the worker's readiness and circuit breaker without a
// key, as a load balancer does.
type healthProbe struct {
	base   string
	client *http.Client
}

// ready returns whether /readyz says ready, and the reasons it gives if not.
func (h *healthProbe) ready() (bool, []string, error) {
	resp, err := h.client.Get(h.base + "/readyz")
	if err != nil {
		return false, nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Ready   bool     `json:"ready"`
		Reasons []string `json:"reasons"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return false, nil, fmt.Errorf("/readyz %s: %w", resp.Status, err)
	}
	return resp.StatusCode == http.StatusOK && body.Ready, body.Reasons, nil
}

// breaker returns /health/circuit-breaker's status: OK (closed), WARNING
// (half-open) or CRITICAL (open).
func (h *healthProbe) breaker() (string, error) {
	resp, err := h.client.Get(h.base + "/health/circuit-breaker")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("/health/circuit-breaker %s: %w", resp.Status, err)
	}
	return body.Status, nil
}

// green reports ready and a closed breaker.
func (h *healthProbe) green() bool {
	ok, _, err := h.ready()
	if err != nil || !ok {
		return false
	}
	s, err := h.breaker()
	return err == nil && s == "OK"
}

// healthSeen is what a watch saw.
type healthSeen struct {
	notReady    bool
	reasons     map[string]bool
	breakerOpen bool // /health/circuit-breaker said CRITICAL (open)
	breakerBad  bool // it said anything but OK (open or half-open)
}

// healthWatch polls the probe until stopped.
type healthWatch struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   healthSeen
}

// watch polls readiness and the breaker, each every 100 ms, until stop. They
// are polled apart: a readiness check waits up to 2 s for a silent service,
// and an open breaker may turn half-open sooner than that.
func (h *healthProbe) watch() *healthWatch {
	hw := &healthWatch{stopCh: make(chan struct{}), seen: healthSeen{reasons: map[string]bool{}}}
	poll := func(check func()) {
		defer hw.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			check()
			select {
			case <-hw.stopCh:
				return
			case <-tick.C:
			}
		}
	}
	hw.wg.Add(2)
	go poll(func() {
		ok, reasons, err := h.ready()
		hw.mu.Lock()
		defer hw.mu.Unlock()
		if err == nil && !ok {
			hw.seen.notReady = true
			for _, r := range reasons {
				name, _, _ := strings.Cut(r, ":")
				hw.seen.reasons[name] = true
			}
		}
	})
	go poll(func() {
		state, err := h.breaker()
		hw.mu.Lock()
		defer hw.mu.Unlock()
		if err == nil && state != "OK" {
			hw.seen.breakerBad = true
			hw.seen.breakerOpen = hw.seen.breakerOpen || state == "CRITICAL"
		}
	})
	return hw
}

func (hw *healthWatch) stop() healthSeen {
	close(hw.stopCh)
	hw.wg.Wait()
	hw.mu.Lock()
	defer hw.mu.Unlock()
	return hw.seen
}

// faultTable renders the results as a Markdown table.
func faultTable(results []faultResult, events int, faultFor time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "AUDIT_E2E_FAULT_EVENTS=%d AUDIT_E2E_FAULT_SECONDS=%d (worker: concurrency 3, batch 250, lock 5 s)\n\n",
		events, int(faultFor.Seconds()))
	b.WriteString("| case | injected | fault | sent | stored | duplicated | dead-lettered | /readyz down | breaker opened | drained after | healthy after | recovery |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	yes := map[bool]string{true: "yes", false: "no"}
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %.1f s | %d | %d | %d | %d | %s | %s | %.1f s | %.1f s | %.1f s |\n",
			r.name, r.injected, r.fault.Seconds(), r.sent, r.stored, r.duplicated, r.deadRows+r.deadJobs,
			yes[r.notReady], yes[r.breakerOpen], r.drain.Seconds(), r.healthy.Seconds(), r.recovery.Seconds())
	}
	return b.String()
}
