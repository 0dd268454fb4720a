package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// TestBenchmarkHarness measures the worker against a real Redis, PostgreSQL and
// the real bullmq npm package. It runs only with AUDIT_E2E_BENCH=1:
//
//	AUDIT_E2E_BENCH=1 AUDIT_E2E_BENCH_OUT=bench.md go test -run TestBenchmarkHarness -v -timeout 60m ./e2e
//
// Phases (AUDIT_E2E_BENCH_PHASES, default "go,node,latency"):
//
//   - go: AUDIT_E2E_BENCH_EVENTS (default 100000) events pre-enqueued with
//     addBulk in chunks of 1000, then the worker starts
//     (reliableProcessor.concurrency AUDIT_E2E_BENCH_CONCURRENCY, default 3;
//     batchSize AUDIT_E2E_BENCH_BATCH, default 500): time from its start until
//     PostgreSQL holds every row, its peak RSS (VmHWM), and the Redis commands
//     and script time per event (INFO deltas; the Redis may be shared).
//   - node: the same number of jobs drained by a Node bullmq Worker with an
//     empty processor, once per concurrency in AUDIT_E2E_BENCH_NODE_CONCURRENCY
//     (comma-separated, default "50"): time from its start until its N-th
//     "completed" event.
//     AUDIT_E2E_BENCH_CHECKPOINTS=0 runs it with security.checkpoint.enabled
//     false (to measure what the Merkle tree integrator costs).
//     AUDIT_E2E_BENCH_MONITORING=0 runs it with monitoring.enabled false (to
//     measure what the pattern detectors cost), AUDIT_E2E_BENCH_PATTERN_STATE
//     sets monitoring.patternDetection.state; AUDIT_E2E_BENCH_SCRAPE=FILE
//     saves a GET /metrics taken when half of the rows are stored;
//     AUDIT_E2E_BENCH_CPU_PROFILE=FILE saves a 3-second CPU profile of the
//     worker (go tool pprof) taken from the start of the drain, and
//     AUDIT_E2E_BENCH_HEAP_PROFILE=FILE its heap profile once it is drained.
//     AUDIT_E2E_BENCH_HOURS=day or night (go and latency phases) sets the
//     detectors' time zone so that the events, stamped now, fall at 12:00 or
//     00:00 local time: at night each principal's first read raises an
//     OFF_HOURS alert, by day none does. Unset, the result depends on the
//     hour at which the benchmark runs (UTC, off hours 22:00–06:00).
//     AUDIT_E2E_BENCH_ROUNDS=N (default 1) runs the go and node drains N
//     times, alternating, and reports the ratio of each round and their median.
//   - latency: the worker running, a Node producer offers AUDIT_E2E_BENCH_RATE
//     events/s (default 5000) for AUDIT_E2E_BENCH_LATENCY_SECONDS (default 20),
//     in addBulk chunks every 10 ms; latency = ingested_at - received_at (the
//     job's timestamp) per row, percentiles computed in SQL.
//
// Every phase also reports the CPU time per event of the worker, Redis and
// PostgreSQL (from /proc, so Linux only), to show where the cores go.
//
// The results table is logged and, with AUDIT_E2E_BENCH_OUT, written as markdown.
func TestBenchmarkHarness(t *testing.T) {
	if os.Getenv("AUDIT_E2E_BENCH") != "1" {
		t.Skip("set AUDIT_E2E_BENCH=1 to run the benchmark harness (and AUDIT_E2E_BENCH_OUT=FILE for a markdown report)")
	}
	b := &benchReport{
		n:         envInt(t, "AUDIT_E2E_BENCH_EVENTS", 100000),
		rounds:    envInt(t, "AUDIT_E2E_BENCH_ROUNDS", 1),
		conc:      envInt(t, "AUDIT_E2E_BENCH_CONCURRENCY", 3),
		batch:     envInt(t, "AUDIT_E2E_BENCH_BATCH", 500),
		rate:      envInt(t, "AUDIT_E2E_BENCH_RATE", 5000),
		latSecs:   envInt(t, "AUDIT_E2E_BENCH_LATENCY_SECONDS", 20),
		sampleMs:  envInt(t, "AUDIT_E2E_BENCH_SAMPLE_MS", 10),
		startedAt: time.Now(),
		loadStart: loadAvg(),
	}
	switch h := os.Getenv("AUDIT_E2E_BENCH_HOURS"); h {
	case "":
	case "day":
		b.timeZone = zoneWhereNowIs(12, b.startedAt)
	case "night":
		b.timeZone = zoneWhereNowIs(0, b.startedAt)
	default:
		t.Fatalf("AUDIT_E2E_BENCH_HOURS=%q: want day or night", h)
	}
	nodeConcs := envIntList(t, "AUDIT_E2E_BENCH_NODE_CONCURRENCY", "50")
	phases := os.Getenv("AUDIT_E2E_BENCH_PHASES")
	if phases == "" {
		phases = "go,node,latency"
	}
	has := func(p string) bool { return slices.Contains(strings.Split(phases, ","), p) }
	// Rounds alternate the drains, so that the host's drift (its speed moves
	// by 10-20 % within minutes) weighs on both sides of the ratio alike.
	for b.round = 1; b.round <= b.rounds; b.round++ {
		suffix := ""
		if b.rounds > 1 {
			suffix = fmt.Sprintf("-round%d", b.round)
		}
		if has("go") {
			t.Run("drain-go"+suffix, func(t *testing.T) { b.drainGo(t) })
		}
		if has("node") {
			for _, c := range nodeConcs {
				t.Run(fmt.Sprintf("drain-node-c%d%s", c, suffix), func(t *testing.T) { b.drainNode(t, c) })
			}
		}
	}
	if has("latency") {
		t.Run("latency", func(t *testing.T) { b.latency(t) })
	}
	b.loadEnd = loadAvg()
	md := b.markdown()
	t.Log("\n" + md)
	if out := os.Getenv("AUDIT_E2E_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		} else {
			t.Logf("report written to %s", out)
		}
	}
}

type drainResult struct {
	who, config          string
	round                int
	wall                 time.Duration // start of the process until every row / completion
	acked                time.Duration // until the queue had no unfinished job (ours)
	inner                time.Duration // Node: from Worker construction
	rssKiB               int64
	redis                redisDelta
	cpu                  cpuDelta // from just before the process starts until the drain is complete
	loadBefore, loadDone string
}

func (d drainResult) rate(n int) float64 { return float64(n) / d.wall.Seconds() }

type latencyResult struct {
	offered, achieved  int64
	events             int64
	produceMs          int64
	maxBehind          int64
	p50, p95, p99, max float64 // ms, ingested_at - received_at
	min, avg           float64
	receivedMatches    int64
	lagSamples         int
	lagP50, lagP99     float64 // ms, batch now() -> visible to the poller
	lagMax             float64
	drainAfter         time.Duration // producer end -> last row stored
	rssKiB             int64
	redis              redisDelta
	cpu                cpuDelta // the producer process not included (its Redis work is)
	loadBefore, load   string
}

type benchReport struct {
	n, conc, batch, rate, latSecs, sampleMs int
	rounds, round                           int    // drain rounds asked for, and the one running
	timeZone                                string // the detectors' (AUDIT_E2E_BENCH_HOURS); "" = UTC
	startedAt                               time.Time
	loadStart, loadEnd                      string
	enqueue                                 []string
	drains                                  []drainResult
	lat                                     *latencyResult
}

func (b *benchReport) drainGo(t *testing.T) {
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	res, keys := e.enqueue(b.n, filepath.Join(e.dir, "ids.txt"))
	b.enqueue = append(b.enqueue, fmt.Sprintf("go phase: %d events enqueued (addBulk, chunks of 1000) in %.1f s (%.0f/s)",
		res.Count, float64(res.ElapsedMs)/1000, float64(res.Count)/(float64(res.ElapsedMs)/1000)))
	monitoringOff := os.Getenv("AUDIT_E2E_BENCH_MONITORING") == "0"
	patternState := os.Getenv("AUDIT_E2E_BENCH_PATTERN_STATE")
	profileFile := os.Getenv("AUDIT_E2E_BENCH_CPU_PROFILE")
	heapFile := os.Getenv("AUDIT_E2E_BENCH_HEAP_PROFILE")
	checkpointsOff := os.Getenv("AUDIT_E2E_BENCH_CHECKPOINTS") == "0"
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: b.conc, BatchSize: b.batch, CheckpointsOff: checkpointsOff,
		MonitoringOff: monitoringOff, PatternState: patternState, Profiling: profileFile != "" || heapFile != "", TimeZone: b.timeZone})
	e.migrate(cfg) // the timed start then only connects
	ctx := context.Background()
	d := drainResult{who: "audit-worker (Go)", config: fmt.Sprintf("concurrency %d, batchSize %d", b.conc, b.batch), loadBefore: loadAvg()}
	if checkpointsOff {
		d.config += ", checkpoints off"
	}
	if monitoringOff {
		d.config += ", monitoring off"
	} else if patternState != "" {
		d.config += ", pattern state " + patternState
	}
	scrapeFile := os.Getenv("AUDIT_E2E_BENCH_SCRAPE")
	before := readRedisStats(t, e.rdb)
	cpuBefore := readCPU(t, 0)
	w := e.startWorker(cfg, logPath)
	t.Logf("worker consuming %s after its start", time.Since(w.started).Round(time.Millisecond))
	if profileFile != "" {
		profiled := make(chan struct{})
		go func() {
			defer close(profiled)
			saveCPUProfile(t, workerURL(t, logPath), profileFile)
		}()
		defer func() { <-profiled }()
	}
	deadline := time.Now().Add(10*time.Minute + time.Duration(b.n)*time.Millisecond)
	for {
		// The id sequence moves with every insert (before its commit), so it
		// tells cheaply when the count can have reached n; only then is the
		// table counted. count(*) scans the table: run every 20 ms from the
		// start, it took a good share of the two cores from the drain it timed.
		issued, err := e.idsIssued(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		if issued >= int64(b.n) {
			if rows, err = e.rowCount(ctx); err != nil {
				t.Fatal(err)
			}
			if rows == int64(b.n) {
				d.wall = time.Since(w.started)
				break
			}
		}
		if scrapeFile != "" && issued >= int64(b.n/2) {
			scrapeMetrics(t, workerURL(t, logPath), scrapeFile)
			scrapeFile = ""
		}
		if time.Now().After(deadline) || w.exited() {
			t.Fatalf("%d ids issued, %d/%d rows (worker exited: %v)", issued, rows, b.n, w.exited())
		}
		if issued >= int64(b.n) {
			time.Sleep(5 * time.Millisecond) // the last commit is due any moment
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	d.loadDone = loadAvg()
	e.waitDrained(int64(b.n), 2*time.Minute, logPath)
	d.acked = time.Since(w.started)
	d.rssKiB, _ = peakRSSKiB(w.pid())
	d.cpu = readCPU(t, w.pid()).sub(cpuBefore)
	d.redis = readRedisStats(t, e.rdb).sub(before)
	if heapFile != "" {
		saveWorkerGET(t, workerURL(t, logPath)+"/debug/pprof/heap", heapFile)
	}
	if err := w.stop(t, 30*time.Second); err != nil {
		t.Errorf("worker stop: %v", err)
	}
	e.checkStored(keys)
	// The detectors' work depends on the hour: from 22:00 to 06:00 UTC (the
	// default off hours) each principal's first read raises an OFF_HOURS alert.
	var alerts, offHours int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE dedup_key LIKE 'OFF_HOURS:%') FROM alerts`).
		Scan(&alerts, &offHours); err != nil {
		t.Errorf("count alerts: %v", err)
	}
	if !monitoringOff {
		d.config += fmt.Sprintf(", %d alerts raised (%d OFF_HOURS)", alerts, offHours)
	}
	d.round = b.round
	b.drains = append(b.drains, d)
	t.Logf("ours: %d rows in %s = %.0f events/s; queue empty after %s; peak RSS %d MiB; Redis %s",
		b.n, d.wall.Round(time.Millisecond), d.rate(b.n), d.acked.Round(time.Millisecond), d.rssKiB/1024, d.redis.perEvent(b.n))
	t.Logf("ours: Redis commands per event: %s", d.redis.top(12, b.n))
	t.Logf("ours: CPU per event: %s", d.cpu.perEvent(b.n))
}

// zoneWhereNowIs returns a fixed-offset IANA zone ("Etc/GMT-3" is UTC+3) in
// which now falls in the given hour.
func zoneWhereNowIs(hour int, now time.Time) string {
	off := ((hour-now.UTC().Hour())%24 + 24) % 24 // 0..23 hours east of UTC
	if off > 12 {
		off -= 24 // Etc zones run from UTC-12 to UTC+14
	}
	switch {
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off)
	case off < 0:
		return fmt.Sprintf("Etc/GMT+%d", -off)
	}
	return "UTC"
}

// scrapeMetrics saves the worker's /metrics exposition to file.
func scrapeMetrics(t *testing.T, baseURL, file string) {
	if saveWorkerGET(t, baseURL+"/metrics", file) {
		t.Logf("/metrics scraped at %s into %s", time.Now().Format(time.RFC3339), file)
	}
}

// saveCPUProfile saves a 3-second CPU profile of the worker into file.
func saveCPUProfile(t *testing.T, baseURL, file string) {
	saveWorkerGET(t, baseURL+"/debug/pprof/profile?seconds=3", file)
}

// saveWorkerGET saves the body of a GET of the worker's url (with its API key)
// into file, reporting failures as test errors.
func saveWorkerGET(t *testing.T, url, file string) bool {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return false
	}
	req.Header.Set("Authorization", "Bearer "+ingestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: status %d, %v", url, resp.StatusCode, err)
		return false
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Errorf("save %s: %v", file, err)
		return false
	}
	return true
}

func (b *benchReport) drainNode(t *testing.T, conc int) {
	e := newEnv(t)
	res, _ := e.enqueue(b.n, filepath.Join(e.dir, "ids.txt"))
	b.enqueue = append(b.enqueue, fmt.Sprintf("node c%d phase: %d events enqueued in %.1f s", conc, res.Count, float64(res.ElapsedMs)/1000))
	d := drainResult{who: "Node bullmq Worker, empty processor", config: fmt.Sprintf("concurrency %d", conc), loadBefore: loadAvg()}
	before := readRedisStats(t, e.rdb)
	cpuBefore := readCPU(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := e.nodeCmd(ctx, "drain.mjs", queueName, "--expect", strconv.Itoa(b.n), "--concurrency", strconv.Itoa(conc),
		"--timeout", strconv.Itoa(600000))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	d.wall = time.Since(started)
	// Right after the N-th completion, while node closes its Worker. node is
	// cmd's own process (no shell) and is not reaped before cmd.Wait, so its
	// /proc/PID/stat is readable even if it has already exited.
	if err == nil {
		d.cpu = readCPU(t, cmd.Process.Pid).sub(cpuBefore)
	}
	d.loadDone = loadAvg()
	if err != nil {
		_ = cmd.Wait()
		t.Fatalf("drain.mjs: %v\nstderr: %s", err, stderr.String())
	}
	var out struct {
		Completed, Failed int
		ElapsedMs         int64
		TimedOut          bool
		MaxRssKiB         int64
	}
	if err := json.Unmarshal(line, &out); err != nil {
		t.Fatalf("drain.mjs output %q: %v", line, err)
	}
	d.redis = readRedisStats(t, e.rdb).sub(before)
	if err := cmd.Wait(); err != nil {
		t.Errorf("drain.mjs exit: %v\nstderr: %s", err, stderr.String())
	}
	if out.TimedOut || out.Completed != b.n || out.Failed != 0 {
		t.Fatalf("drain.mjs: %+v, want %d completed", out, b.n)
	}
	d.inner = time.Duration(out.ElapsedMs) * time.Millisecond
	d.rssKiB = out.MaxRssKiB
	d.round = b.round
	b.drains = append(b.drains, d)
	t.Logf("node c%d: %d jobs in %s = %.0f jobs/s (%s from Worker construction); peak RSS %d MiB; Redis %s",
		conc, b.n, d.wall.Round(time.Millisecond), d.rate(b.n), d.inner, d.rssKiB/1024, d.redis.perEvent(b.n))
	t.Logf("node c%d: Redis commands per event: %s", conc, d.redis.top(12, b.n))
	t.Logf("node c%d: CPU per event: %s", conc, d.cpu.perEvent(b.n))
}

func (b *benchReport) latency(t *testing.T) {
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: b.conc, BatchSize: b.batch, TimeZone: b.timeZone})
	w := e.startWorker(cfg, logPath)
	r := &latencyResult{offered: int64(b.rate), loadBefore: loadAvg()}
	before := readRedisStats(t, e.rdb)
	cpuBefore := readCPU(t, w.pid())

	// The visibility sampler: every sampleMs, the highest visible id and the
	// server's clock. A batch that raises max(id) became visible (committed)
	// between the previous sample and this one.
	type sample struct {
		maxID int64
		at    time.Time
	}
	var samples []sample
	stopSampler := make(chan struct{})
	samplerDone := make(chan error, 1)
	go func() {
		ctx := context.Background()
		conn, err := e.pool.Acquire(ctx)
		if err != nil {
			samplerDone <- err
			return
		}
		defer conn.Release()
		tick := time.NewTicker(time.Duration(b.sampleMs) * time.Millisecond)
		defer tick.Stop()
		last := int64(-1)
		for range 10_000_000 { // bounded: stopped long before
			select {
			case <-stopSampler:
				samplerDone <- nil
				return
			case <-tick.C:
			}
			var s sample
			if err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0), clock_timestamp() FROM audit_log`).Scan(&s.maxID, &s.at); err != nil {
				samplerDone <- err
				return
			}
			if s.maxID != last {
				samples = append(samples, s)
				last = s.maxID
			}
		}
		samplerDone <- nil
	}()

	idsFile := filepath.Join(e.dir, "ids.txt")
	var res produced
	dur := time.Duration(b.latSecs) * time.Second
	e.node(dur+3*time.Minute, &res, "stream.mjs", "--rate", strconv.Itoa(b.rate),
		"--duration-ms", strconv.FormatInt(dur.Milliseconds(), 10), "--tick-ms", "10", "--out", idsFile,
		"--watchdog-ms", strconv.FormatInt((dur+170*time.Second).Milliseconds(), 10))
	producerDone := time.Now()
	keys := e.readKeys(idsFile, res.Count)
	r.events, r.achieved, r.produceMs, r.maxBehind = int64(res.Count), res.OfferedRate, res.ElapsedMs, res.MaxBehind
	e.waitDrained(int64(res.Count), 3*time.Minute, logPath)
	r.load = loadAvg()
	close(stopSampler)
	if err := <-samplerDone; err != nil {
		t.Fatalf("visibility sampler: %v", err)
	}
	r.rssKiB, _ = peakRSSKiB(w.pid())
	r.cpu = readCPU(t, w.pid()).sub(cpuBefore)
	r.redis = readRedisStats(t, e.rdb).sub(before)
	if err := w.stop(t, 30*time.Second); err != nil {
		t.Errorf("worker stop: %v", err)
	}
	e.checkStored(keys)

	ctx := context.Background()
	var lastIngest time.Time
	err := e.pool.QueryRow(ctx, `
		SELECT count(*),
		       percentile_cont(0.50) WITHIN GROUP (ORDER BY ms),
		       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
		       max(ms), min(ms), avg(ms),
		       count(*) FILTER (WHERE received_ms = job_ms),
		       max(ingested_at)
		FROM (SELECT (extract(epoch FROM ingested_at - received_at) * 1000)::float8 AS ms,
		             (extract(epoch FROM received_at) * 1000)::bigint AS received_ms,
		             split_part(idempotency_key, ':', 4)::bigint AS job_ms,
		             ingested_at
		      FROM audit_log) s`).Scan(&r.events, &r.p50, &r.p95, &r.p99, &r.max, &r.min, &r.avg, &r.receivedMatches, &lastIngest)
	if err != nil {
		t.Fatal(err)
	}
	r.drainAfter = lastIngest.Sub(producerDone)
	if r.receivedMatches != r.events {
		t.Errorf("received_at equals the job timestamp for %d of %d rows", r.receivedMatches, r.events)
	}

	// Commit lag: for each batch that raised max(id), sample time - its now().
	ids := make([]int64, 0, len(samples))
	at := map[int64]time.Time{}
	for _, s := range samples {
		if s.maxID > 0 {
			ids = append(ids, s.maxID)
			at[s.maxID] = s.at
		}
	}
	rows, err := e.pool.Query(ctx, `SELECT id, ingested_at FROM audit_log WHERE id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	var lags []float64
	for rows.Next() {
		var id int64
		var ing time.Time
		if err := rows.Scan(&id, &ing); err != nil {
			t.Fatal(err)
		}
		lags = append(lags, float64(at[id].Sub(ing).Microseconds())/1000)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(lags)
	r.lagSamples = len(lags)
	if len(lags) > 0 {
		r.lagP50 = lags[len(lags)/2]
		r.lagP99 = lags[min(len(lags)-1, len(lags)*99/100)]
		r.lagMax = lags[len(lags)-1]
	}
	b.lat = r
	t.Logf("latency at %d/s offered (%d/s achieved, %d events): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; commit lag p50 %.1f ms, p99 %.1f ms (%d batches)",
		r.offered, r.achieved, r.events, r.p50, r.p95, r.p99, r.max, r.lagP50, r.lagP99, r.lagSamples)
	t.Logf("latency: CPU per event (producer process not included, its Redis work is): %s", r.cpu.perEvent(int(r.events)))
}

func (b *benchReport) markdown() string {
	var s strings.Builder
	host, _ := os.Hostname()
	nodeVersion := "?"
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		nodeVersion = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(&s, "# audit-worker end-to-end benchmark\n\n")
	fmt.Fprintf(&s, "- run %s on %s: %d CPUs, %s, node %s, bullmq 5.58.5; PostgreSQL and Redis on 127.0.0.1\n",
		b.startedAt.Format(time.RFC3339), host, runtime.NumCPU(), runtime.Version(), nodeVersion)
	fmt.Fprintf(&s, "- load average (1/5/15 min) at start %s, at end %s — the machine may be shared\n", b.loadStart, b.loadEnd)
	fmt.Fprintf(&s, "- events: realistic audit events (~870 bytes of JSON, ~300 of them custom fields), job options "+
		"`{removeOnComplete: 100, removeOnFail: false, attempts: 1}`\n")
	zone := b.timeZone
	if zone == "" {
		zone = "UTC (the default)"
	}
	fmt.Fprintf(&s, "- the detectors' time zone: %s (off hours 22:00–06:00 local)\n", zone)
	for _, l := range b.enqueue {
		fmt.Fprintf(&s, "- %s\n", l)
	}
	if len(b.drains) > 0 {
		fmt.Fprintf(&s, "\n## Drain: %d jobs pre-enqueued\n\n", b.n)
		fmt.Fprintf(&s, "Ours: time from the process start (schema migrated beforehand) until PostgreSQL holds every row (its id sequence read every 20 ms, then count(*) every 5 ms once the sequence has reached N); "+
			"Node: from the process start until the N-th `completed` event of a Worker whose processor does nothing.\n\n")
		fmt.Fprintf(&s, "| consumer | config | time | events/s | peak RSS | Redis cmds/event | script calls/event | script µs/event | all Redis µs/event | load avg before → at end |\n")
		fmt.Fprintf(&s, "|---|---|---|---|---|---|---|---|---|---|\n")
		ours := make(map[int]float64) // by round
		best := make(map[int]float64)
		bestCfg := ""
		for _, d := range b.drains {
			extra := ""
			if d.acked > 0 {
				extra = fmt.Sprintf(" (queue empty: %.2f s)", d.acked.Seconds())
			}
			if d.inner > 0 {
				extra = fmt.Sprintf(" (from Worker construction: %.2f s)", d.inner.Seconds())
			}
			pe := d.redis.perEventValues(b.n)
			fmt.Fprintf(&s, "| %s | %s | %.2f s%s | %.0f | %d MiB | %.2f | %.3f | %.1f | %.1f | %s → %s |\n",
				d.who+roundLabel(b.rounds, d.round), d.config, d.wall.Seconds(), extra, d.rate(b.n), d.rssKiB/1024,
				pe[0], pe[1], pe[2], pe[3], d.loadBefore, d.loadDone)
			if strings.HasPrefix(d.who, "audit-worker") {
				ours[d.round] = d.rate(b.n)
			} else if d.rate(b.n) > best[d.round] {
				best[d.round], bestCfg = d.rate(b.n), d.config
			}
		}
		var ratios []float64
		for r := 1; r <= b.rounds; r++ {
			if ours[r] > 0 && best[r] > 0 {
				ratios = append(ratios, ours[r]/best[r])
				fmt.Fprintf(&s, "\nRatio ours / Node (best, %s)%s: **%.2f×** (%.0f vs %.0f events/s).",
					bestCfg, roundLabel(b.rounds, r), ours[r]/best[r], ours[r], best[r])
			}
		}
		if len(ratios) > 0 {
			if len(ratios) > 1 {
				slices.Sort(ratios)
				fmt.Fprintf(&s, "\n\nRatios of the %d rounds, lowest to highest: %s; median **%.2f×**.",
					len(ratios), joinRatios(ratios), median(ratios))
			}
			fmt.Fprintf(&s, " Node does no work per job; ours validates, hashes and stores every event in PostgreSQL.\n")
		}
		fmt.Fprintf(&s, "\nRedis figures are deltas of `INFO stats` total_commands_processed and `INFO commandstats` "+
			"(EVAL/EVALSHA and their _RO forms for \"script\"; usec summed over all commands for \"all\") over the drain, "+
			"divided by N. Redis counts the commands a script runs (redis.call) as commands too. Anything else using the same "+
			"Redis meanwhile is included.\n")
		fmt.Fprintf(&s, "\nCPU per event (user + system, µs) from just before the consumer starts until the drain is complete:\n\n")
		fmt.Fprintf(&s, "| consumer | config | worker | redis | postgres | total | cores busy |\n|---|---|---|---|---|---|---|\n")
		for _, d := range b.drains {
			c := d.cpu.perEventValues(b.n)
			fmt.Fprintf(&s, "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f of %d |\n", d.who+roundLabel(b.rounds, d.round), d.config, c[0], c[1], c[2], c[3], c[4], runtime.NumCPU())
		}
		fmt.Fprintf(&s, "\n%s\n", cpuNote)
	}
	if r := b.lat; r != nil {
		fmt.Fprintf(&s, "\n## Latency under a steady offered load\n\n")
		fmt.Fprintf(&s, "Node producer: `Queue.addBulk` every 10 ms of the jobs due at %d events/s for %d s; worker %s.\n\n",
			r.offered, b.latSecs, fmt.Sprintf("concurrency %d, batchSize %d", b.conc, b.batch))
		fmt.Fprintf(&s, "| metric | value |\n|---|---|\n")
		fmt.Fprintf(&s, "| events offered / achieved rate | %d in %.1f s, %d/s (largest backlog of due jobs: %d) |\n",
			r.events, float64(r.produceMs)/1000, r.achieved, r.maxBehind)
		fmt.Fprintf(&s, "| latency p50 / p95 / p99 / max | %.1f / %.1f / %.1f / %.1f ms |\n", r.p50, r.p95, r.p99, r.max)
		fmt.Fprintf(&s, "| latency min / mean | %.1f / %.1f ms |\n", r.min, r.avg)
		fmt.Fprintf(&s, "| commit lag (batch now() → visible), p50 / p99 / max | %.1f / %.1f / %.1f ms (%d batches, %d ms sampling) |\n",
			r.lagP50, r.lagP99, r.lagMax, r.lagSamples, b.sampleMs)
		fmt.Fprintf(&s, "| last batch's now() − producer exit | %.0f ms |\n", float64(r.drainAfter.Microseconds())/1000)
		fmt.Fprintf(&s, "| worker peak RSS | %d MiB |\n", r.rssKiB/1024)
		pe := r.redis.perEventValues(int(r.events))
		fmt.Fprintf(&s, "| Redis cmds / script calls / all µs per event (producer included) | %.2f / %.3f / %.1f |\n", pe[0], pe[1], pe[3])
		c := r.cpu.perEventValues(int(r.events))
		fmt.Fprintf(&s, "| CPU µs per event, worker / redis / postgres / total (the producer process not included, its Redis work is) | %.1f / %.1f / %.1f / %.1f (%.2f of %d cores busy) |\n",
			c[0], c[1], c[2], c[3], c[4], runtime.NumCPU())
		fmt.Fprintf(&s, "| load average before → at end | %s → %s |\n", r.loadBefore, r.load)
		fmt.Fprintf(&s, "\nLatency per event = `ingested_at − received_at` in SQL (`percentile_cont`): `received_at` is the job's "+
			"timestamp (set by bullmq in the producer when the job is created; checked equal for %d of %d rows), `ingested_at` is "+
			"PostgreSQL's `now()`, the **start** of the inserting transaction, so these figures are short by the time from the "+
			"transaction start to its commit. Without a schema change (`clock_timestamp()` as the column default) or "+
			"`track_commit_timestamp = on` (server restart) the commit time is not recorded per row; the commit-lag row "+
			"estimates it instead: a poller reads `max(id)` with `clock_timestamp()` every %d ms, and for every batch that "+
			"raised max(id) the lag is the poll time minus the batch's `now()` (an upper bound, to within one poll interval). "+
			"Producer and database share the host clock.\n", r.receivedMatches, r.events, b.sampleMs)
	}
	return s.String()
}

// redisStats are the counters the harness reads from INFO.
type redisStats struct {
	commands    int64
	scriptCalls int64
	scriptUsec  int64
	allUsec     int64
	calls, usec map[string]int64 // per command
}

type redisDelta redisStats

func readRedisStats(t testing.TB, rdb *redis.Client) redisStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	st := redisStats{calls: map[string]int64{}, usec: map[string]int64{}}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			st.commands, _ = strconv.ParseInt(v, 10, 64)
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var calls, usec int64
		for field := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "calls":
				calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		st.allUsec += usec
		st.calls[cmd], st.usec[cmd] = calls, usec
		switch cmd {
		case "eval", "evalsha", "eval_ro", "evalsha_ro":
			st.scriptCalls += calls
			st.scriptUsec += usec
		}
	}
	return st
}

func (a redisStats) sub(b redisStats) redisDelta {
	d := redisDelta{a.commands - b.commands, a.scriptCalls - b.scriptCalls, a.scriptUsec - b.scriptUsec, a.allUsec - b.allUsec,
		map[string]int64{}, map[string]int64{}}
	for cmd, c := range a.calls {
		if c -= b.calls[cmd]; c > 0 {
			d.calls[cmd], d.usec[cmd] = c, a.usec[cmd]-b.usec[cmd]
		}
	}
	return d
}

// top lists the commands with the most calls per event (Redis counts the calls
// scripts make too), with their µs per event (the script's own figure
// includes the time of the calls it makes).
func (d redisDelta) top(n, events int) string {
	cmds := make([]string, 0, len(d.calls))
	for cmd := range d.calls {
		cmds = append(cmds, cmd)
	}
	slices.SortFunc(cmds, func(a, b string) int { return int(d.calls[b] - d.calls[a]) })
	var parts []string
	for _, cmd := range cmds[:min(n, len(cmds))] {
		parts = append(parts, fmt.Sprintf("%s %.2f calls, %.1f µs", cmd, float64(d.calls[cmd])/float64(events), float64(d.usec[cmd])/float64(events)))
	}
	return strings.Join(parts, "; ")
}

// perEventValues: commands, script calls, script µs and all µs per event.
func (d redisDelta) perEventValues(n int) [4]float64 {
	if n == 0 {
		return [4]float64{}
	}
	f := float64(n)
	return [4]float64{float64(d.commands) / f, float64(d.scriptCalls) / f, float64(d.scriptUsec) / f, float64(d.allUsec) / f}
}

func (d redisDelta) perEvent(n int) string {
	v := d.perEventValues(n)
	return fmt.Sprintf("%.2f cmds/event, %.3f script calls/event, %.1f script µs/event, %.1f µs/event in all", v[0], v[1], v[2], v[3])
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func envIntList(t testing.TB, name, dflt string) []int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		v = dflt
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want comma-separated positive integers", name, v)
		}
		out = append(out, n)
	}
	return out
}

const cpuNote = "CPU figures are deltas of utime + stime in `/proc/PID/stat` of the worker (ours, or node), " +
	"the redis-server process and every postgres process (plus the postmaster's cutime + cstime: the backends that " +
	"exited), divided by N; cores busy = their sum / wall time between the two readings. The harness's own PostgreSQL " +
	"connection (polling the id sequence) and any other client of the same servers are included; the harness and the " +
	"producer are not."

// cpuSnapshot is the CPU time (user + system) the process groups sharing the
// machine have consumed so far, so that two snapshots around a drain show
// where the cores went: our (or Node's) worker, Redis, or PostgreSQL. Anything
// else on the machine (the harness itself, the Node producer, other people's
// benchmarks) is left out, though other clients' PostgreSQL backends and Redis
// commands are included, as in the Redis figures.
type cpuSnapshot struct {
	at                      time.Time
	worker, redis, postgres time.Duration
}

// cpuDelta is the CPU each group spent between two snapshots, and the wall time
// between them.
type cpuDelta struct{ wall, worker, redis, postgres time.Duration }

// clockTick is the unit of the times in /proc/PID/stat (USER_HZ).
var clockTick = sync.OnceValue(func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if hz, err2 := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && err2 == nil && hz > 0 {
		return time.Second / time.Duration(hz)
	}
	return time.Second / 100
})

// readCPU takes a snapshot from /proc (Linux only). workerPID 0 means the
// worker does not run yet: its CPU so far is 0. The worker must not have been
// reaped yet (a zombie's /proc/PID/stat still holds its times).
func readCPU(t testing.TB, workerPID int) cpuSnapshot {
	t.Helper()
	type stat struct {
		comm                string
		ppid                int
		own, reapedChildren time.Duration
	}
	s := cpuSnapshot{at: time.Now()}
	tick := clockTick()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("CPU snapshot: %v", err)
	}
	procs := map[int]stat{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
		// so the fields from 3 (state) on start after the last ')'.
		line := string(data)
		open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) < 15 {
			continue
		}
		n := func(field int) int64 { v, _ := strconv.ParseInt(f[field-3], 10, 64); return v }
		procs[pid] = stat{
			comm:           line[open+1 : end],
			ppid:           int(n(4)),
			own:            time.Duration(n(14)+n(15)) * tick, // utime + stime, all threads
			reapedChildren: time.Duration(n(16)+n(17)) * tick, // cutime + cstime
		}
	}
	isPostgres := func(p stat) bool { return strings.HasPrefix(p.comm, "postgres") }
	if w, ok := procs[workerPID]; ok {
		s.worker = w.own
	} else if workerPID != 0 {
		t.Errorf("CPU snapshot: no /proc/%d/stat for the worker", workerPID)
	}
	for _, p := range procs {
		switch {
		case p.comm == "redis-server":
			s.redis += p.own
		case isPostgres(p):
			s.postgres += p.own
			// The postmaster reaps every backend: the CPU of the connections
			// that closed since the first snapshot is only in its cutime.
			if parent, ok := procs[p.ppid]; !ok || !isPostgres(parent) {
				s.postgres += p.reapedChildren
			}
		}
	}
	return s
}

func (a cpuSnapshot) sub(b cpuSnapshot) cpuDelta {
	return cpuDelta{a.at.Sub(b.at), a.worker - b.worker, a.redis - b.redis, a.postgres - b.postgres}
}

// perEventValues: worker, redis, postgres and total µs per event, and the
// total as cores busy over the interval.
func (d cpuDelta) perEventValues(n int) [5]float64 {
	if n == 0 || d.wall <= 0 {
		return [5]float64{}
	}
	total := d.worker + d.redis + d.postgres
	us := func(v time.Duration) float64 { return float64(v.Microseconds()) / float64(n) }
	return [5]float64{us(d.worker), us(d.redis), us(d.postgres), us(total), total.Seconds() / d.wall.Seconds()}
}

func (d cpuDelta) perEvent(n int) string {
	v := d.perEventValues(n)
	return fmt.Sprintf("worker %.1f µs/event, redis %.1f, postgres %.1f, total %.1f (%.2f cores busy over %.2f s)",
		v[0], v[1], v[2], v[3], v[4], d.wall.Seconds())
}

// roundLabel names round r in the report when there is more than one.
func roundLabel(rounds, r int) string {
	if rounds == 1 {
		return ""
	}
	return fmt.Sprintf(", round %d", r)
}

func joinRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f×", r)
	}
	return strings.Join(parts, ", ")
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// TestNodeWorkloadProfile holds the Node producer's production profile
// (e2e/node/lib.mjs) to the table of internal/eventgen: every event valid,
// the frequencies within the tolerance of eventgen.Tally.Check.
func TestNodeWorkloadProfile(t *testing.T) {
	root := moduleRoot(t)
	requireNode(t, root)
	const n = 20000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "e2e", "node", "events.mjs"),
		"--profile", "production", "--count", strconv.Itoa(n), "--seed", "42")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("events.mjs: %v\n%s", err, stderr.String())
	}
	var res struct {
		Jobs []struct {
			Data json.RawMessage
			Opts struct {
				Priority int
				Delay    int64 // ms
			}
			DrawnMs int64 // the clock right after the drawing
		}
		ElapsedMs int64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("events.mjs output: %v", err)
	}
	if len(res.Jobs) != n {
		t.Fatalf("events.mjs drew %d jobs, want %d", len(res.Jobs), n)
	}
	tally := eventgen.NewTally()
	for i, j := range res.Jobs {
		ev, _, err := audit.ParseEvent(j.Data, audit.DefaultRules(), time.UnixMilli(j.DrawnMs))
		if err != nil {
			t.Fatalf("job %d refused: %v\n%s", i, err, j.Data)
		}
		opts := eventgen.JobOptions{Priority: j.Opts.Priority, Delay: time.Duration(j.Opts.Delay) * time.Millisecond}
		tally.Add(&ev, opts, time.UnixMilli(j.DrawnMs))
	}
	for _, p := range tally.Check(eventgen.ProductionShares()) {
		t.Error(p)
	}
	t.Logf("%d jobs drawn in %d ms; details %d–%d bytes; timestamps %s–%s old", n, res.ElapsedMs,
		tally.MinDetails, tally.MaxDetails, tally.YoungestAge, tally.OldestAge)
}
