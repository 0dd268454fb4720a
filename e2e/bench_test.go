package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
// Workload (AUDIT_E2E_BENCH_WORKLOAD, default "production"): the drains'
// events come from produce.mjs --profile, drawn from the table of
// internal/eventgen: "production" (5 organisations with tens of users each,
// timestamps of now, logins, failures with reasons, FHIR reads, exports with
// record counts, system events without a principal; 5 % of the jobs with a
// priority, 0.5 % delayed by 1–5 s) or "synthetic" (uniform over 8 actions,
// 50 organisations, 20,000 principals). Each round's seed is its number, so
// both sides of a round drain the same events.
//
// Phases (AUDIT_E2E_BENCH_PHASES, default "go,node,latency"):
//
//   - go and node, the drains: AUDIT_E2E_BENCH_EVENTS (default 100000) events
//     are added with addBulk (chunks of 1000) to a paused queue
//     (queue.pause()); the consumer starts and reports ready (ours: its
//     "consuming BullMQ queue" log line; Node: a bullmq Worker with an empty
//     processor, its 'ready' event); once every delayed job is due the
//     harness checks that no job was taken (and, ours, no row inserted), then
//     a Node process already connected calls queue.resume(), and the queue is
//     polled every 5 ms: the drain lasts from the resume until no job is
//     waiting, prioritized, delayed, paused or active. CPU per event (the
//     consumer, Redis and PostgreSQL, from /proc, so Linux only) and the Redis
//     commands per event (INFO deltas, the poller's own commands taken out;
//     the Redis may be shared) cover the same interval; peak RSS is the
//     consumer's (ours: VmHWM; Node: maxRSS). Ours then holds every row in
//     PostgreSQL (checked). Ours runs with reliableProcessor.concurrency
//     AUDIT_E2E_BENCH_CONCURRENCY (default 3) and batchSize
//     AUDIT_E2E_BENCH_BATCH (default 500); Node's Worker once per
//     concurrency in AUDIT_E2E_BENCH_NODE_CONCURRENCY (comma-separated,
//     default "50").
//     AUDIT_E2E_BENCH_ROUNDS=N (default 5) runs the drains N times,
//     alternating ours and Node's, and reports per round ours and Node's
//     events/s, their ratio, CPU per event by process, Redis commands per
//     event and peak RSS, then the median and range of each over the rounds.
//     AUDIT_E2E_BENCH_CHECKPOINTS=0 runs ours with
//     security.checkpoint.enabled false (to measure what the Merkle tree
//     integrator costs). AUDIT_E2E_BENCH_MONITORING=0 runs it with
//     monitoring.enabled false (to measure what the pattern detectors cost),
//     AUDIT_E2E_BENCH_PATTERN_STATE sets monitoring.patternDetection.state;
//     AUDIT_E2E_BENCH_SCRAPE=FILE saves a GET /metrics taken when half of the
//     jobs are finished; AUDIT_E2E_BENCH_CPU_PROFILE=FILE saves a 3-second CPU
//     profile of the worker (go tool pprof) taken from the resume, and
//     AUDIT_E2E_BENCH_HEAP_PROFILE=FILE its heap profile when half of the
//     jobs are finished.
//     AUDIT_E2E_BENCH_HOURS=day or night (go and latency phases) sets the
//     detectors' time zone so that the events, stamped now, fall at 12:00 or
//     00:00 local time: at night each principal's first read raises an
//     OFF_HOURS alert, by day none does. Unset, the result depends on the
//     hour at which the benchmark runs (UTC, off hours 22:00–06:00).
//   - latency: the worker running, a Node producer offers AUDIT_E2E_BENCH_RATE
//     synthetic events/s (default 5000) for AUDIT_E2E_BENCH_LATENCY_SECONDS
//     (default 20), in addBulk chunks every 10 ms; latency = ingested_at -
//     received_at (the job's timestamp) per row, percentiles computed in SQL.
//
// The results table is logged and, with AUDIT_E2E_BENCH_OUT, written as markdown.
//
// TestNodeWorkloadProfile (runs by default, needs node only) holds the Node
// generator of the production profile to eventgen's table.
func TestBenchmarkHarness(t *testing.T) {
	if os.Getenv("AUDIT_E2E_BENCH") != "1" {
		t.Skip("set AUDIT_E2E_BENCH=1 to run the benchmark harness (and AUDIT_E2E_BENCH_OUT=FILE for a markdown report)")
	}
	b := &benchReport{
		n:         envInt(t, "AUDIT_E2E_BENCH_EVENTS", 100000),
		rounds:    envInt(t, "AUDIT_E2E_BENCH_ROUNDS", 5),
		conc:      envInt(t, "AUDIT_E2E_BENCH_CONCURRENCY", 3),
		batch:     envInt(t, "AUDIT_E2E_BENCH_BATCH", 500),
		rate:      envInt(t, "AUDIT_E2E_BENCH_RATE", 5000),
		latSecs:   envInt(t, "AUDIT_E2E_BENCH_LATENCY_SECONDS", 20),
		sampleMs:  envInt(t, "AUDIT_E2E_BENCH_SAMPLE_MS", 10),
		startedAt: time.Now(),
		loadStart: loadAvg(),
	}
	b.workload = eventgen.Production
	if w := os.Getenv("AUDIT_E2E_BENCH_WORKLOAD"); w != "" {
		p, err := eventgen.ParseProfile(w)
		if err != nil {
			t.Fatalf("AUDIT_E2E_BENCH_WORKLOAD: %v", err)
		}
		b.workload = p
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
	ready                time.Duration // the consumer's start until it is ready (ours: its log line; Node: the Worker's 'ready' event)
	idle                 cpuSnapshot   // when it was ready: its CPU until the resume is what waiting on the paused queue costs
	wall                 time.Duration // the resume until no job is left unfinished
	rssKiB               int64
	redis                redisDelta
	cpu                  cpuDelta // the same interval as wall
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
	workload                                eventgen.Profile // AUDIT_E2E_BENCH_WORKLOAD
	rounds, round                           int              // drain rounds asked for, and the one running
	timeZone                                string           // the detectors' (AUDIT_E2E_BENCH_HOURS); "" = UTC
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
	keys, filled := b.fill(t, e, "go")
	resumer := startResumer(t, e)
	monitoringOff := os.Getenv("AUDIT_E2E_BENCH_MONITORING") == "0"
	patternState := os.Getenv("AUDIT_E2E_BENCH_PATTERN_STATE")
	profileFile := os.Getenv("AUDIT_E2E_BENCH_CPU_PROFILE")
	heapFile := os.Getenv("AUDIT_E2E_BENCH_HEAP_PROFILE")
	checkpointsOff := os.Getenv("AUDIT_E2E_BENCH_CHECKPOINTS") == "0"
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: b.conc, BatchSize: b.batch, CheckpointsOff: checkpointsOff,
		MonitoringOff: monitoringOff, PatternState: patternState, Profiling: profileFile != "" || heapFile != "", TimeZone: b.timeZone})
	e.migrate(cfg) // the start then only connects
	ctx := context.Background()
	d := drainResult{who: "audit-worker (Go)", config: fmt.Sprintf("concurrency %d, batchSize %d", b.conc, b.batch)}
	if checkpointsOff {
		d.config += ", checkpoints off"
	}
	if monitoringOff {
		d.config += ", monitoring off"
	} else if patternState != "" {
		d.config += ", pattern state " + patternState
	}
	w := e.startWorker(cfg, logPath) // returns once the worker logs that it consumes the queue
	d.ready = time.Since(w.started)
	t.Logf("ours: consuming %s after its start", d.ready.Round(time.Millisecond))
	d.idle = readCPU(t, w.pid())
	b.awaitDelays(filled)
	b.checkPaused(t, e, "ours")
	if profileFile != "" {
		profiled := make(chan struct{})
		defer func() { <-profiled }()
		go func() {
			defer close(profiled)
			saveCPUProfile(t, workerURL(t, logPath), profileFile)
		}()
	}
	scrape := os.Getenv("AUDIT_E2E_BENCH_SCRAPE")
	b.timedDrain(t, e, &d, resumer, w.pid(), w.exited, func(left int64) {
		if left > int64(b.n/2) {
			return
		}
		if scrape != "" {
			scrapeMetrics(t, workerURL(t, logPath), scrape)
			scrape = ""
		}
		if heapFile != "" {
			saveWorkerGET(t, workerURL(t, logPath)+"/debug/pprof/heap", heapFile)
			heapFile = ""
		}
	})
	d.rssKiB, _ = peakRSSKiB(w.pid())
	if rows, err := e.rowCount(ctx); err != nil || rows != int64(b.n) {
		t.Fatalf("queue empty with %d rows stored (%v), want %d: the worker acknowledged before storing", rows, err, b.n)
	}
	if err := w.stop(t, 30*time.Second); err != nil {
		t.Errorf("worker stop: %v", err)
	}
	e.checkStored(keys)
	// The detectors' work depends on the hour: from 22:00 to 06:00 local time
	// (the default off hours) each principal's first read raises an OFF_HOURS alert.
	var alerts, offHours int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE dedup_key LIKE 'OFF_HOURS:%') FROM alerts`).
		Scan(&alerts, &offHours); err != nil {
		t.Errorf("count alerts: %v", err)
	}
	if !monitoringOff {
		d.config += fmt.Sprintf(", %d alerts raised (%d OFF_HOURS)", alerts, offHours)
	}
	b.drains = append(b.drains, d)
	t.Logf("ours: %d events in %s from the resume = %.0f events/s; peak RSS %d MiB; Redis %s",
		b.n, d.wall.Round(time.Millisecond), d.rate(b.n), d.rssKiB/1024, d.redis.perEvent(b.n))
	t.Logf("ours: Redis commands per event: %s", d.redis.top(12, b.n))
	t.Logf("ours: CPU per event: %s", d.cpu.perEvent(b.n))
}

// fill enqueues the round's events into a paused queue (produce.mjs --pause)
// and returns the idempotency keys the worker gives them and when the last
// job was added. Both sides of a round get the same seed, so the same events.
func (b *benchReport) fill(t *testing.T, e *env, side string) (map[string]bool, time.Time) {
	t.Helper()
	var res struct {
		produced
		Paused bool `json:"paused"`
	}
	idsFile := filepath.Join(e.dir, "ids.txt")
	e.node(2*time.Minute+time.Duration(b.n)*time.Millisecond, &res, "produce.mjs",
		"--count", strconv.Itoa(b.n), "--chunk", "1000", "--out", idsFile, "--watchdog-ms", strconv.Itoa(110000+b.n),
		"--profile", b.workload.String(), "--seed", strconv.Itoa(b.round), "--pause")
	filled := time.Now()
	if res.Count != b.n || !res.Paused {
		t.Fatalf("produce.mjs added %d jobs (paused %v), want %d to a paused queue", res.Count, res.Paused, b.n)
	}
	b.enqueue = append(b.enqueue, fmt.Sprintf("%s%s: %d %s events enqueued into the paused queue (addBulk, chunks of 1000) in %.1f s (%.0f/s)",
		side, roundLabel(b.rounds, b.round), res.Count, b.workload, float64(res.ElapsedMs)/1000, float64(res.Count)/(float64(res.ElapsedMs)/1000)))
	return e.readKeys(idsFile, b.n), filled
}

// maxJobDelay is the longest delay the production profile gives a job.
const maxJobDelay = 5 * time.Second

// awaitDelays waits until every delayed job of the fill is due, so that no
// drain waits for a delay to run out: the first fetch after the resume
// promotes them all.
func (b *benchReport) awaitDelays(filled time.Time) {
	if b.workload == eventgen.Production {
		time.Sleep(time.Until(filled.Add(maxJobDelay)))
	}
}

// checkPaused fails unless the queue still holds every job, none of them
// taken, and (ours) no row was inserted: the consumer that is ready honours
// the pause.
func (b *benchReport) checkPaused(t *testing.T, e *env, who string) {
	t.Helper()
	ctx := context.Background()
	counts, err := e.queueCounts(ctx, queueName)
	if err != nil {
		t.Fatal(err)
	}
	if counts["wait"] != 0 || counts["active"] != 0 || pending(counts) != int64(b.n) {
		t.Fatalf("paused queue before the resume, %s ready: %v; want all %d jobs in paused, prioritized or delayed, none waiting or active",
			who, counts, b.n)
	}
	if who == "ours" {
		if ids, err := e.idsIssued(ctx); err != nil || ids != 0 {
			t.Fatalf("paused queue: the worker inserted %d rows (%v) before the resume", ids, err)
		}
	}
}

// resumer is resume.mjs, connected and waiting for its cue.
type resumer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	errs  *strings.Builder
}

func startResumer(t *testing.T, e *env) *resumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	t.Cleanup(cancel)
	cmd := e.nodeCmd(ctx, "resume.mjs", queueName)
	r := &resumer{cmd: cmd, errs: &strings.Builder{}}
	cmd.Stderr = r.errs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.stdin.Close(); _ = cmd.Wait() })
	r.out = bufio.NewReader(stdout)
	var ready struct{ Ready, Paused bool }
	r.read(t, &ready)
	if !ready.Ready || !ready.Paused {
		t.Fatalf("resume.mjs: %+v, want ready on a paused queue", ready)
	}
	return r
}

func (r *resumer) read(t *testing.T, v any) {
	t.Helper()
	line, err := r.out.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, v)
	}
	if err != nil {
		t.Fatalf("resume.mjs: %v (output %q)\nstderr: %s", err, line, r.errs.String())
	}
}

// pendingJobs reads how many jobs are unfinished (the states pending sums)
// with 3 LLEN and 2 ZCARD, pipelined.
func (e *env) pendingJobs(ctx context.Context) (int64, error) {
	base := e.prefix + ":" + queueName + ":"
	pipe := e.rdb.Pipeline()
	var cmds []*redis.IntCmd
	for _, s := range []string{"wait", "active", "paused"} {
		cmds = append(cmds, pipe.LLen(ctx, base+s))
	}
	for _, s := range []string{"delayed", "prioritized"} {
		cmds = append(cmds, pipe.ZCard(ctx, base+s))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// timedDrain resumes the queue and polls it every 5 ms until no job is left
// unfinished: d.wall is the time from the resume to that poll, and the CPU and
// Redis figures cover the same interval (the poller's own commands taken
// out). The consumer (consumerPID) is ready and waits on the paused queue.
// progress, if set, sees the number of unfinished jobs at every poll.
func (b *benchReport) timedDrain(t *testing.T, e *env, d *drainResult, r *resumer, consumerPID int, exited func() bool, progress func(left int64)) {
	t.Helper()
	ctx := context.Background()
	d.round = b.round
	d.loadBefore = loadAvg()
	before := readRedisStats(t, e.rdb)
	cpuBefore := readCPU(t, consumerPID)
	if w := cpuBefore.sub(d.idle); d.idle.at.IsZero() {
		t.Errorf("no CPU snapshot of the consumer when it was ready")
	} else {
		t.Logf("waiting on the paused queue for %s, the consumer used %s of CPU", w.wall.Round(time.Millisecond), w.worker)
	}
	resumed := time.Now()
	if _, err := io.WriteString(r.stdin, "resume\n"); err != nil {
		t.Fatalf("cue resume.mjs: %v\nstderr: %s", err, r.errs.String())
	}
	deadline := resumed.Add(10*time.Minute + time.Duration(b.n)*time.Millisecond)
	polls := 0
	for {
		left, err := e.pendingJobs(ctx)
		polls++
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			d.wall = time.Since(resumed)
			break
		}
		if progress != nil {
			progress(left)
		}
		if time.Now().After(deadline) || exited() {
			t.Fatalf("%d of %d jobs unfinished %s after the resume (consumer exited: %v)", left, b.n, time.Since(resumed).Round(time.Second), exited())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.cpu = readCPU(t, consumerPID).sub(cpuBefore)
	d.redis = readRedisStats(t, e.rdb).sub(before).without(map[string]int64{"llen": 3 * int64(polls), "zcard": 2 * int64(polls)})
	d.loadDone = loadAvg()
	var res struct{ Resumed, Paused bool }
	r.read(t, &res)
	if !res.Resumed || res.Paused {
		t.Fatalf("resume.mjs: %+v, want resumed", res)
	}
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

// saveWorkerGET saves the body of a GET of the worker's url (with the
// operator's key) into file, reporting failures as test errors.
func saveWorkerGET(t *testing.T, url, file string) bool {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return false
	}
	req.Header.Set("Authorization", "Bearer "+operatorKey)
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
	_, filled := b.fill(t, e, fmt.Sprintf("node c%d", conc))
	resumer := startResumer(t, e)
	d := drainResult{who: "Node bullmq Worker, empty processor", config: fmt.Sprintf("concurrency %d", conc)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := e.nodeCmd(ctx, "drain.mjs", queueName, "--expect", strconv.Itoa(b.n), "--concurrency", strconv.Itoa(conc),
		"--timeout", strconv.Itoa(600000), "--report-ready")
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
	// Lines are read to the end before cmd.Wait, which closes the pipe; and
	// node is reaped only once the drain is measured (reap), so that its
	// /proc/PID/stat stays readable even if it has exited by then.
	lines := make(chan []byte, 4)
	eof, exited, reap := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var reapOnce sync.Once
	letReap := func() { reapOnce.Do(func() { close(reap) }) }
	var waitErr error
	go func() {
		defer close(exited)
		out := bufio.NewReader(stdout)
		for {
			line, err := out.ReadBytes('\n')
			if len(line) > 0 {
				lines <- line
			}
			if err != nil {
				break
			}
		}
		close(lines)
		close(eof)
		<-reap
		waitErr = cmd.Wait()
	}()
	defer func() { cancel(); letReap(); <-exited }()
	hasExited := func() bool {
		select {
		case <-eof:
			return true
		default:
			return false
		}
	}
	readLine := func(v any) {
		t.Helper()
		line, ok := <-lines
		err := errors.New("no more output")
		if ok {
			err = json.Unmarshal(line, v)
		}
		if err != nil {
			cancel() // stderr is complete once the process is reaped
			letReap()
			<-exited
			t.Fatalf("drain.mjs: %v (output %q; exit: %v)\nstderr: %s", err, line, waitErr, stderr.String())
		}
	}
	var ready struct{ Ready bool }
	readLine(&ready) // the Worker's 'ready' event
	d.ready = time.Since(started)
	d.idle = readCPU(t, cmd.Process.Pid)
	b.awaitDelays(filled)
	b.checkPaused(t, e, "Node")
	b.timedDrain(t, e, &d, resumer, cmd.Process.Pid, hasExited, nil)
	var res struct {
		Completed, Failed int
		ElapsedMs         int64
		TimedOut          bool
		MaxRssKiB         int64
	}
	readLine(&res)
	letReap()
	<-exited
	if waitErr != nil {
		t.Errorf("drain.mjs exit: %v\nstderr: %s", waitErr, stderr.String())
	}
	if res.TimedOut || res.Completed != b.n || res.Failed != 0 {
		t.Fatalf("drain.mjs: %+v, want %d completed", res, b.n)
	}
	d.rssKiB = res.MaxRssKiB
	b.drains = append(b.drains, d)
	t.Logf("node c%d: %d jobs in %s from the resume = %.0f jobs/s; peak RSS %d MiB; Redis %s",
		conc, b.n, d.wall.Round(time.Millisecond), d.rate(b.n), d.rssKiB/1024, d.redis.perEvent(b.n))
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
	fmt.Fprintf(&s, "- drain events: the %s profile (AUDIT_E2E_BENCH_WORKLOAD; see internal/eventgen), seeded by the round, "+
		"job options `{removeOnComplete: 100, removeOnFail: false, attempts: 1}`%s; latency events: synthetic\n", b.workload, workloadOptions(b.workload))
	zone := b.timeZone
	if zone == "" {
		zone = "UTC (the default)"
	}
	fmt.Fprintf(&s, "- the detectors' time zone: %s (off hours 22:00–06:00 local)\n", zone)
	for _, l := range b.enqueue {
		fmt.Fprintf(&s, "- %s\n", l)
	}
	if len(b.drains) > 0 {
		b.drainMarkdown(&s)
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

func workloadOptions(p eventgen.Profile) string {
	if p == eventgen.Production {
		return " plus a priority 1–3 on 5 % of the jobs and a delay of 1–5 s on 0.5 %"
	}
	return ""
}

// drainMarkdown writes the drain section: every drain, then the rounds side
// by side, then the median and range over the rounds.
func (b *benchReport) drainMarkdown(s *strings.Builder) {
	fmt.Fprintf(s, "\n## Drain: %d jobs in a paused queue\n\n", b.n)
	fmt.Fprintf(s, "Each drain fills a paused queue (`queue.pause()`, then `addBulk`), starts the consumer and waits until it is ready "+
		"(ours: its \"%s\" log line; Node: the Worker's `ready` event) and until every delayed job is due, checks that no job was "+
		"taken, then resumes the queue (`queue.resume()` from a Node process already connected) and polls the queue every 5 ms: "+
		"the time is from the resume to the first poll that finds no job waiting, prioritized, delayed, paused or active. "+
		"Ours has then stored every row (checked); Node's Worker has a processor that does nothing. Rounds alternate ours and "+
		"Node's, so that the host's drift weighs on both alike.\n\n", readyLogMsg)
	fmt.Fprintf(s, "| consumer | config | ready after | drain | events/s | peak RSS | Redis cmds/event | script calls/event | script µs/event | all Redis µs/event | load avg before → at end |\n")
	fmt.Fprintf(s, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range b.drains {
		pe := d.redis.perEventValues(b.n)
		fmt.Fprintf(s, "| %s | %s | %.2f s | %.2f s | %.0f | %d MiB | %.2f | %.3f | %.1f | %.1f | %s → %s |\n",
			d.who+roundLabel(b.rounds, d.round), d.config, d.ready.Seconds(), d.wall.Seconds(), d.rate(b.n), d.rssKiB/1024,
			pe[0], pe[1], pe[2], pe[3], d.loadBefore, d.loadDone)
	}
	fmt.Fprintf(s, "\nRedis figures are deltas of `INFO stats` total_commands_processed and `INFO commandstats` "+
		"(EVAL/EVALSHA and their _RO forms for \"script\"; usec summed over all commands for \"all\") from the resume to the "+
		"end of the drain, divided by N, without the poller's LLEN and ZCARD calls (their µs stay in \"all\"). Redis counts "+
		"the commands a script runs (redis.call) as commands too. Anything else using the same Redis meanwhile is included.\n")
	fmt.Fprintf(s, "\nCPU per event (user + system, µs) from the resume to the end of the drain; \"consumer\" is our worker "+
		"or the node process running the Worker:\n\n")
	fmt.Fprintf(s, "| consumer | config | consumer | redis | postgres | total | cores busy |\n|---|---|---|---|---|---|---|\n")
	for _, d := range b.drains {
		c := d.cpu.perEventValues(b.n)
		fmt.Fprintf(s, "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f of %d |\n", d.who+roundLabel(b.rounds, d.round), d.config,
			c[0], c[1], c[2], c[3], c[4], runtime.NumCPU())
	}
	fmt.Fprintf(s, "\n%s\n", cpuNote)

	// Per round: ours against Node's fastest configuration of that round.
	type pair struct{ ours, node *drainResult }
	rounds := map[int]*pair{}
	for i := range b.drains {
		d := &b.drains[i]
		p := rounds[d.round]
		if p == nil {
			p = &pair{}
			rounds[d.round] = p
		}
		if strings.HasPrefix(d.who, "audit-worker") {
			p.ours = d
		} else if p.node == nil || d.wall < p.node.wall {
			p.node = d
		}
	}
	var complete []pair
	for r := 1; r <= b.rounds; r++ {
		if p := rounds[r]; p != nil && p.ours != nil && p.node != nil {
			complete = append(complete, *p)
		}
	}
	if len(complete) == 0 {
		return
	}
	fmt.Fprintf(s, "\n### Rounds\n\n| round | ours events/s | Node events/s (config) | ours / Node | CPU µs/event ours: worker, redis, postgres | Node: node, redis, postgres | Redis cmds/event ours / Node | peak RSS ours / Node |\n|---|---|---|---|---|---|---|---|\n")
	var ours, node, ratio, oursCPU, nodeCPU, oursCmds, nodeCmds, oursRSS, nodeRSS []float64
	for _, p := range complete {
		o, n := p.ours.rate(b.n), p.node.rate(b.n)
		oc, nc := p.ours.cpu.perEventValues(b.n), p.node.cpu.perEventValues(b.n)
		or, nr := p.ours.redis.perEventValues(b.n), p.node.redis.perEventValues(b.n)
		fmt.Fprintf(s, "| %d | %.0f | %.0f (%s) | %.2f× | %.1f, %.1f, %.1f | %.1f, %.1f, %.1f | %.2f / %.2f | %.0f / %.0f MiB |\n",
			p.ours.round, o, n, p.node.config, o/n, oc[0], oc[1], oc[2], nc[0], nc[1], nc[2], or[0], nr[0],
			float64(p.ours.rssKiB)/1024, float64(p.node.rssKiB)/1024)
		ours, node, ratio = append(ours, o), append(node, n), append(ratio, o/n)
		oursCPU, nodeCPU = append(oursCPU, oc[3]), append(nodeCPU, nc[3])
		oursCmds, nodeCmds = append(oursCmds, or[0]), append(nodeCmds, nr[0])
		oursRSS, nodeRSS = append(oursRSS, float64(p.ours.rssKiB)/1024), append(nodeRSS, float64(p.node.rssKiB)/1024)
	}
	fmt.Fprintf(s, "\n### Median and range over %d rounds\n\n| figure | median | lowest – highest |\n|---|---|---|\n", len(complete))
	for _, row := range []struct {
		name, format string
		vals         []float64
	}{
		{"ours, events/s", "%.0f", ours}, {"Node, events/s", "%.0f", node}, {"**ours / Node**", "%.2f×", ratio},
		{"ours, CPU µs/event (worker + redis + postgres)", "%.1f", oursCPU}, {"Node, CPU µs/event (node + redis + postgres)", "%.1f", nodeCPU},
		{"ours, Redis cmds/event", "%.2f", oursCmds}, {"Node, Redis cmds/event", "%.2f", nodeCmds},
		{"ours, peak RSS MiB", "%.0f", oursRSS}, {"Node, peak RSS MiB", "%.0f", nodeRSS},
	} {
		v := slices.Sorted(slices.Values(row.vals))
		fmt.Fprintf(s, "| %s | "+row.format+" | "+row.format+" – "+row.format+" |\n", row.name, median(v), v[0], v[len(v)-1])
	}
	fmt.Fprintf(s, "\nNode does no work per job; ours validates, hashes, runs the detectors on and stores every event in PostgreSQL.\n")
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

// without takes out the commands the harness itself sent (calls by command);
// their µs stay in the "all" figure.
func (d redisDelta) without(calls map[string]int64) redisDelta {
	for cmd, n := range calls {
		d.commands -= n
		if d.calls[cmd] -= n; d.calls[cmd] <= 0 {
			delete(d.calls, cmd)
			delete(d.usec, cmd)
		}
	}
	return d
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
	"exited), divided by N; cores busy = their sum / wall time between the two readings. The harness's own polling " +
	"(Redis in the drains, PostgreSQL in the latency phase) and any other client of the same servers are included; the " +
	"harness and the producer processes are not."

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
			DrawnMs int64 // the clock reading the job was stamped from
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

// TestWorkerHonoursPausedQueue: a worker started on a queue Node has paused
// (queue.pause()) takes no job, prioritized and delayed ones included, and
// drains every job once Node resumes it (queue.resume()).
func TestWorkerHonoursPausedQueue(t *testing.T) {
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	b := &benchReport{n: 300, rounds: 1, round: 1, workload: eventgen.Production}
	keys, filled := b.fill(t, e, "pause test")
	r := startResumer(t, e)
	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 2, BatchSize: 50})
	w := e.startWorker(cfg, logPath)
	b.awaitDelays(filled) // the worker waits meanwhile: at least 5 s since the last add
	b.checkPaused(t, e, "ours")
	counts, err := e.queueCounts(context.Background(), queueName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paused queue with the worker ready: %v", counts)
	if _, err := io.WriteString(r.stdin, "resume\n"); err != nil {
		t.Fatal(err)
	}
	var res struct{ Resumed, Paused bool }
	r.read(t, &res)
	if !res.Resumed || res.Paused {
		t.Fatalf("resume.mjs: %+v", res)
	}
	e.waitDrained(int64(b.n), time.Minute, logPath)
	if err := w.stop(t, 30*time.Second); err != nil {
		t.Errorf("worker stop: %v", err)
	}
	e.checkStored(keys)
}
