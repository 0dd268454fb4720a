package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// The console CPU measurement: a worker process on PostgreSQL ingests a
// steady stream over HTTP while one console's overview stream is open, or
// not, in alternating phases; the difference in the worker's CPU time is
// what one open console costs.
const (
	cpuBatch     = 500 // events per request
	cpuBodies    = 40  // distinct request bodies, sent again under new idempotency keys
	cpuSenders   = 64  // requests in flight at most
	cpuWarmUp    = 10 * time.Second
	cpuOperator  = "console-cpu-operator-key-0123456789"
	cpuIngestKey = "console-cpu-ingest-key-0123456789"
)

// TestConsoleCPUCost measures the worker's CPU with and without one open
// console at AUDIT_CONSOLE_CPU_RATE events/s (default 20,000), in
// AUDIT_CONSOLE_CPU_ROUNDS rounds (default 8) of two phases of
// AUDIT_CONSOLE_CPU_PHASE (default 15s), the order alternating (ABBA) so
// that a drift of the machine's speed weighs on both sides. The console is
// what its Overview page asks of the worker: a session (POST
// /console/session) and GET /v1/stream/overview with its cookie, read to
// the end of every message. It then takes a one-minute CPU profile of the
// worker with the console open and reports the share of the stream's
// handler. Run with AUDIT_CONSOLE_CPU=1.
func TestConsoleCPUCost(t *testing.T) {
	if os.Getenv("AUDIT_CONSOLE_CPU") != "1" {
		t.Skip("a measurement of several minutes: run with AUDIT_CONSOLE_CPU=1 (and AUDIT_CONSOLE_CPU_RATE, _ROUNDS, _PHASE)")
	}
	rate := envInt(t, "AUDIT_CONSOLE_CPU_RATE", 20000)
	rounds := envInt(t, "AUDIT_CONSOLE_CPU_ROUNDS", 8)
	phase := 15 * time.Second
	if v := os.Getenv("AUDIT_CONSOLE_CPU_PHASE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("AUDIT_CONSOLE_CPU_PHASE: %v", err)
		}
		phase = d
	}
	bin := workerBinaryForTest(t)
	pgURL := testenv.PostgresDatabase(t)
	addr := freeAddress(t)
	cfgPath := filepath.Join(t.TempDir(), "worker.json")
	writeJSONFile(t, cfgPath, map[string]any{
		"enhancedClient": map[string]any{"connectionString": pgURL, "maxConnections": 8},
		"http": map[string]any{"address": addr, "apiKeys": []string{cpuIngestKey},
			"keys": []map[string]any{{"name": "cpu-operator", "key": cpuOperator, "role": "operator", "organizations": []string{"*"}}}},
		"storage":       map[string]any{"dataDir": t.TempDir()},
		"logging":       map[string]any{"level": "warn"},
		"observability": map[string]any{"profiling": map[string]any{"enabled": true}},
	})
	w := startWorkerProcess(t, bin, cfgPath, "http://"+addr, cpuIngestKey)
	load := startLoad(t, w, rate)
	defer load.stop(t)
	time.Sleep(cpuWarmUp)

	var with, without []float64
	var phases []cpuPhase
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, open := range order {
			cpu, evs := measurePhase(t, w, load, phase, open)
			phases = append(phases, cpuPhase{cpu: cpu, rate: evs, console: open})
			if open {
				with = append(with, cpu)
			} else {
				without = append(without, cpu)
			}
			t.Logf("round %d console %-5v: worker CPU %6.2f %% of a core, %6.0f events/s", r+1, open, 100*cpu, evs)
		}
	}
	var deltas []float64
	for i := range with {
		deltas = append(deltas, with[i]-without[i])
	}
	mean, half := meanAndCI(deltas)
	t.Logf("without a console: median %.2f %% of a core; with one: median %.2f %%", 100*median(without), 100*median(with))
	t.Logf("one open console costs the worker %+.2f %% of a core (mean of %d paired rounds, 95 %% interval ±%.2f %%; median %+.2f %%)",
		100*mean, len(deltas), 100*half, 100*median(deltas))
	if c, se, ok := consoleEffect(phases); ok {
		t.Logf("the same, with the events/s each phase achieved taken into account (least squares, CPU = a + b·rate + c·console): c = %+.2f %% of a core ± %.2f %% (95 %%)",
			100*c, 100*1.96*se)
	}
	profileStream(t, w, 60*time.Second)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s: a positive integer (is %q)", name, v)
	}
	return n
}

// loadGen sends cpuBatch events every cpuBatch/rate seconds, each request
// with an idempotency key of its own so that every event is new to the store.
type loadGen struct {
	stored  atomic.Int64
	stopped chan struct{}
	wg      sync.WaitGroup
}

func startLoad(t *testing.T, w *workerProcess, rate int) *loadGen {
	t.Helper()
	g := eventgen.New(2026)
	bodies := make([][]byte, cpuBodies)
	for i := range bodies {
		var buf bytes.Buffer
		for range cpuBatch {
			buf.Write(g.Valid())
			buf.WriteByte('\n')
		}
		bodies[i] = buf.Bytes()
	}
	l := &loadGen{stopped: make(chan struct{})}
	jobs := make(chan int, cpuSenders)
	for range cpuSenders {
		l.wg.Go(func() {
			for n := range jobs {
				l.send(t, w, bodies[n%len(bodies)], n)
			}
		})
	}
	l.wg.Go(func() {
		defer close(jobs)
		ticker := time.NewTicker(time.Duration(float64(time.Second) * cpuBatch / float64(rate)))
		defer ticker.Stop()
		for n := 0; ; n++ {
			select {
			case <-l.stopped:
				return
			case <-ticker.C:
			}
			select {
			case jobs <- n:
			default: // the worker is behind: this batch is not sent, and the rate shows it
			}
		}
	})
	return l
}

func (l *loadGen) send(t *testing.T, w *workerProcess, body []byte, n int) {
	resp, err := w.do(http.MethodPost, "/v1/events", body, map[string]string{
		"Content-Type": "application/x-ndjson", "Idempotency-Key": "cpu-" + strconv.Itoa(n)})
	if err != nil {
		t.Errorf("send: %v", err)
		return
	}
	defer resp.Body.Close()
	var out struct{ Stored int }
	if resp.StatusCode == http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&out)
		l.stored.Add(int64(out.Stored))
	}
}

func (l *loadGen) stop(t *testing.T) {
	close(l.stopped)
	l.wg.Wait()
}

// measurePhase returns the worker's CPU, in cores, over one phase, and the
// events stored per second meanwhile.
func measurePhase(t *testing.T, w *workerProcess, load *loadGen, d time.Duration, console bool) (float64, float64) {
	t.Helper()
	var viewer *consoleViewer
	if console {
		viewer = openConsole(t, w.url)
		time.Sleep(2 * time.Second) // the page's first load and first messages are not the steady cost
	}
	cpu0, stored0, start := processCPU(t, w.cmd.Process.Pid), load.stored.Load(), time.Now()
	time.Sleep(d)
	cpu1, stored1, elapsed := processCPU(t, w.cmd.Process.Pid), load.stored.Load(), time.Since(start)
	if viewer != nil {
		if got := viewer.close(); float64(got) < 0.8*d.Seconds() {
			t.Errorf("the console got %d messages in %s, want one a second", got, d)
		}
	}
	return (cpu1 - cpu0).Seconds() / elapsed.Seconds(), float64(stored1-stored0) / elapsed.Seconds()
}

// processCPU is the user and system time a process has used (/proc/pid/stat).
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at state.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// consoleViewer is an open console: a session and its overview stream.
type consoleViewer struct {
	cancel   context.CancelFunc
	messages atomic.Int64
	wg       sync.WaitGroup
}

func openConsole(t *testing.T, base string) *consoleViewer {
	t.Helper()
	resp, err := http.Post(base+"/console/session", "application/json", strings.NewReader(`{"credential":"`+cpuOperator+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) == 0 {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	cookie := resp.Cookies()[0]
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/stream/overview", nil)
	req.AddCookie(cookie)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open the overview stream: %v", err)
	}
	v := &consoleViewer{cancel: cancel}
	v.wg.Go(func() {
		defer stream.Body.Close()
		sc := bufio.NewScanner(stream.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: overview") {
				v.messages.Add(1)
			}
		}
	})
	return v
}

// close ends the stream and returns how many messages came.
func (v *consoleViewer) close() int64 {
	v.cancel()
	v.wg.Wait()
	return v.messages.Load()
}

// profileStream takes a CPU profile of the worker over d with the console
// open and the load running, and reports the share of the overview
// stream's handler (a profile samples every 10 ms, so a minute resolves
// 0.02 % of a core).
func profileStream(t *testing.T, w *workerProcess, d time.Duration) {
	t.Helper()
	viewer := openConsole(t, w.url)
	defer viewer.close()
	time.Sleep(2 * time.Second)
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", w.url, int(d.Seconds())), nil)
	req.Header.Set("Authorization", "Bearer "+cpuOperator)
	client := &http.Client{Timeout: d + time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prof bytes.Buffer
	if _, err := prof.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("profile: %d %v", resp.StatusCode, err)
	}
	path := filepath.Join(t.TempDir(), "worker.pprof")
	if err := os.WriteFile(path, prof.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodefraction=0", "-nodecount=100000", path).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	// The cumulative time of the stream's handler is everything one console
	// costs on its own goroutine: building, encoding and writing each message,
	// and re-checking the credentials.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Duration:") || strings.Contains(line, "httpapi.(*Server).streamOverview") ||
			strings.Contains(line, "httpapi.(*Server).sharedOverview") || strings.Contains(line, "health.(*Checker).run") {
			t.Logf("profile: %s", strings.TrimSpace(line))
		}
	}
}

// cpuPhase is one phase of the measurement.
type cpuPhase struct {
	cpu, rate float64 // cores; events stored per second
	console   bool
}

// consoleEffect fits CPU = a + b·rate + c·console by least squares and
// returns c and its standard error: a phase's CPU follows the events it
// stored, which a loaded machine makes vary more than the console does.
func consoleEffect(phases []cpuPhase) (c, se float64, ok bool) {
	n := len(phases)
	if n < 5 {
		return 0, 0, false
	}
	row := func(p cpuPhase) [3]float64 {
		x := [3]float64{1, p.rate / 1000, 0}
		if p.console {
			x[2] = 1
		}
		return x
	}
	var xtx [3][3]float64
	var xty [3]float64
	for _, p := range phases {
		x := row(p)
		for i := range 3 {
			xty[i] += x[i] * p.cpu
			for j := range 3 {
				xtx[i][j] += x[i] * x[j]
			}
		}
	}
	inv, ok := invert3(xtx)
	if !ok {
		return 0, 0, false
	}
	var beta [3]float64
	for i := range 3 {
		for j := range 3 {
			beta[i] += inv[i][j] * xty[j]
		}
	}
	var rss float64
	for _, p := range phases {
		x := row(p)
		r := p.cpu - (beta[0]*x[0] + beta[1]*x[1] + beta[2]*x[2])
		rss += r * r
	}
	return beta[2], math.Sqrt(rss / float64(n-3) * inv[2][2]), true
}

// invert3 inverts a 3×3 matrix by its adjugate.
func invert3(m [3][3]float64) ([3][3]float64, bool) {
	var inv [3][3]float64
	inv[0][0] = m[1][1]*m[2][2] - m[1][2]*m[2][1]
	inv[0][1] = m[0][2]*m[2][1] - m[0][1]*m[2][2]
	inv[0][2] = m[0][1]*m[1][2] - m[0][2]*m[1][1]
	inv[1][0] = m[1][2]*m[2][0] - m[1][0]*m[2][2]
	inv[1][1] = m[0][0]*m[2][2] - m[0][2]*m[2][0]
	inv[1][2] = m[0][2]*m[1][0] - m[0][0]*m[1][2]
	inv[2][0] = m[1][0]*m[2][1] - m[1][1]*m[2][0]
	inv[2][1] = m[0][1]*m[2][0] - m[0][0]*m[2][1]
	inv[2][2] = m[0][0]*m[1][1] - m[0][1]*m[1][0]
	det := m[0][0]*inv[0][0] + m[0][1]*inv[1][0] + m[0][2]*inv[2][0]
	if math.Abs(det) < 1e-12 {
		return inv, false
	}
	for i := range 3 {
		for j := range 3 {
			inv[i][j] /= det
		}
	}
	return inv, true
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// meanAndCI is the mean and the half-width of its 95 % interval (t
// distribution, approximated by 2.36 for 8 pairs and 2 beyond 30).
func meanAndCI(xs []float64) (float64, float64) {
	n := float64(len(xs))
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / n
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	if n < 2 {
		return mean, math.NaN()
	}
	tq := 2.0
	if n <= 30 {
		tq = studentT95[int(n)-2]
	}
	return mean, tq * math.Sqrt(sq/(n-1)/n)
}

// studentT95 is the 97.5th percentile of Student's t for 1 to 29 degrees of freedom.
var studentT95 = []float64{12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14,
	2.13, 2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05}

// TestConsoleEffectFit checks the analysis on phases made up from a known
// law: 5 % of a core, plus 1 % per thousand events/s, plus 0.3 % with the
// console, and a little noise.
func TestConsoleEffectFit(t *testing.T) {
	var phases []cpuPhase
	for i := range 16 {
		rate := 10000 + float64((i*3779)%10000)
		open := i%2 == 1
		cpu := 0.05 + 0.01*rate/1000 + 0.0001*float64(i%3-1)
		if open {
			cpu += 0.003
		}
		phases = append(phases, cpuPhase{cpu: cpu, rate: rate, console: open})
	}
	c, se, ok := consoleEffect(phases)
	if !ok || math.Abs(c-0.003) > 0.0003 || se <= 0 || se > 0.001 {
		t.Errorf("console effect %.5f ± %.5f (ok %v), want 0.003 with a small error", c, se, ok)
	}
}
