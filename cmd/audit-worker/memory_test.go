package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// What the memory test sends, and what it allows.
const (
	memClients     = 40
	memBodyLimit   = 8 << 20  // http.maxBodyBytes (the default)
	memBudget      = 64 << 20 // http.maxInFlightBytes (the default)
	memEventFiller = 3500     // characters of custom detail per event
	// memPeakFactor: a held request byte costs about two bytes of live heap
	// while its events are parsed and stored (the worker's soft memory limit
	// assumes the same).
	memPeakFactor = 2
	// memPeakMargin is the collector's working room above the live heap
	// (the worker's soft memory limit, 2 × budget + 128 MiB, keeps it small)
	// and what the runtime and the binary's pages add to the idle size.
	memPeakMargin = 128 << 20
	// memAfterMargin is how far above its idle size the worker may stay once
	// the burst is over.
	memAfterMargin = 48 << 20
)

// TestMemoryIsBounded starts the worker as its own process on PostgreSQL,
// sends 40 concurrent valid requests of nearly 8 MiB each (retrying those
// turned away with 503 until every one is stored), and checks that the
// process's resident memory stays within the ingest budget times the cost of
// a held byte plus a margin, and falls back once the burst is over.
// AUDIT_MEMORY_TEST_BIN runs another build of the worker instead (to measure
// one without the budget).
func TestMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 320 MiB through a worker process; skipped with -short")
	}
	bin := workerBinaryForTest(t)
	pgURL := testenv.PostgresDatabase(t)
	key := "memory-test-key-0123456789"
	addr := freeAddress(t)
	cfgPath := filepath.Join(t.TempDir(), "worker.json")
	writeJSONFile(t, cfgPath, map[string]any{
		"enhancedClient": map[string]any{"connectionString": pgURL},
		"http": map[string]any{"address": addr, "apiKeys": []string{key},
			"maxBodyBytes": memBodyLimit, "maxInFlightBytes": memBudget},
		"storage": map[string]any{"dataDir": t.TempDir()},
		"logging": map[string]any{"level": "warn"},
	})
	w := startWorkerProcess(t, bin, cfgPath, "http://"+addr, key)

	body, events := memoryTestBody(t)
	w.post(t, body, "warm-up") // the first batch opens connections and fills caches
	time.Sleep(2 * time.Second)
	idle := w.rss(t)

	sampler := w.sampleRSS(20 * time.Millisecond)
	start := time.Now()
	busy := w.burst(t, body, events)
	peak := sampler.stop()
	elapsed := time.Since(start)

	after, settled := w.waitRSSBelow(t, idle+memAfterMargin, 60*time.Second)
	limit := idle + memPeakFactor*memBudget + memPeakMargin
	t.Logf("RSS idle %d MiB, peak %d MiB (limit %d MiB), after %d MiB (%.1f s after the burst); "+
		"%d clients × %d events (%d bytes each request), %d answers 503, burst %.1f s",
		idle>>20, peak>>20, limit>>20, after>>20, settled.Seconds(),
		memClients, events, len(body), busy, elapsed.Seconds())
	if peak > limit {
		t.Errorf("peak RSS %d MiB over the limit of %d MiB (idle %d MiB + %d × budget %d MiB + %d MiB)",
			peak>>20, limit>>20, idle>>20, memPeakFactor, memBudget>>20, memPeakMargin>>20)
	}
	if after > idle+memAfterMargin {
		t.Errorf("RSS %d MiB a minute after the burst, want at most idle %d MiB + %d MiB", after>>20, idle>>20, memAfterMargin>>20)
	}
	if os.Getenv("AUDIT_MEMORY_TEST_BIN") == "" {
		w.checkMetrics(t)
	}
}

// workerBinaryForTest builds this package's binary without the race detector
// (which would multiply its memory), or returns AUDIT_MEMORY_TEST_BIN.
func workerBinaryForTest(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("AUDIT_MEMORY_TEST_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "audit-worker")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// memoryTestBody is a JSON array of valid events just under the body limit,
// and how many events it holds.
func memoryTestBody(t *testing.T) ([]byte, int) {
	t.Helper()
	g := eventgen.New(77)
	filler := strings.Repeat("x", memEventFiller)
	var buf bytes.Buffer
	buf.WriteByte('[')
	n := 0
	for {
		f := g.Fields()
		f["attachmentSummary"] = filler
		ev := g.Seal(f)
		if buf.Len()+len(ev)+2 > memBodyLimit {
			break
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(ev)
		n++
	}
	buf.WriteByte(']')
	return buf.Bytes(), n
}

// workerProcess is a worker running as a child process.
type workerProcess struct {
	cmd    *exec.Cmd
	url    string
	key    string
	client *http.Client
}

func startWorkerProcess(t *testing.T, bin, cfgPath, url, key string) *workerProcess {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfgPath)
	// The worker's own garbage collector target applies, whatever the test's environment says.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// AUDIT_MEMORY_TEST_WORKER_ENV (e.g. "GOGC=100 GOMEMLIMIT=200MiB") measures other settings.
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv("AUDIT_MEMORY_TEST_WORKER_ENV"))...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workerProcess{cmd: cmd, url: url, key: key, client: &http.Client{Timeout: 2 * time.Minute}}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := w.do(http.MethodGet, "/readyz", nil, nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready after 30 s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *workerProcess) do(method, path string, body []byte, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(method, w.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return w.client.Do(req)
}

// post sends body once and returns the status. An idempotency key makes each
// client's copy of the same bytes distinct events; without one, the events'
// bytes are their keys.
func (w *workerProcess) post(t *testing.T, body []byte, idempotencyKey string) int {
	t.Helper()
	header := map[string]string{"Content-Type": "application/json"}
	if idempotencyKey != "" {
		header["Idempotency-Key"] = idempotencyKey
	}
	resp, err := w.do(http.MethodPost, "/v1/events", body, header)
	if err != nil {
		t.Errorf("POST /v1/events: %v", err)
		return 0
	}
	defer resp.Body.Close()
	var out struct{ Stored, Duplicates, Rejected int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && resp.StatusCode == http.StatusOK {
		t.Errorf("decode answer: %v", err)
	}
	if resp.StatusCode == http.StatusOK && (out.Rejected > 0 || out.Stored+out.Duplicates == 0) {
		t.Errorf("%s: %+v", idempotencyKey, out)
	}
	return resp.StatusCode
}

// burst sends the body from memClients clients at once; a client turned away
// with 503 waits a second and sends again until its events are stored. It
// returns how many 503s were answered.
func (w *workerProcess) burst(t *testing.T, body []byte, events int) int64 {
	t.Helper()
	var busy atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(4 * time.Minute)
	for i := range memClients {
		wg.Go(func() {
			for {
				switch code := w.post(t, body, "memory-"+strconv.Itoa(i)); code {
				case http.StatusOK:
					return
				case http.StatusServiceUnavailable:
					busy.Add(1)
					if time.Now().After(deadline) {
						t.Errorf("client %d still turned away after 4 minutes", i)
						return
					}
					time.Sleep(time.Second)
				default:
					t.Errorf("client %d: status %d", i, code)
					return
				}
			}
		})
	}
	wg.Wait()
	return busy.Load()
}

// rss reads the worker's resident set size from /proc.
func (w *workerProcess) rss(t *testing.T) int64 {
	t.Helper()
	n, err := readRSS(w.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssSampler records the highest RSS seen until stop.
type rssSampler struct {
	peak atomic.Int64
	done chan struct{}
	wg   sync.WaitGroup
}

func (w *workerProcess) sampleRSS(every time.Duration) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	pid := w.cmd.Process.Pid
	s.wg.Go(func() {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			if n, err := readRSS(pid); err == nil && n > s.peak.Load() {
				s.peak.Store(n)
			}
			select {
			case <-s.done:
				return
			case <-ticker.C:
			}
		}
	})
	return s
}

func (s *rssSampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.peak.Load()
}

// waitRSSBelow waits up to max for the RSS to fall to limit and returns the
// last reading and how long it took.
func (w *workerProcess) waitRSSBelow(t *testing.T, limit int64, max time.Duration) (int64, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		n := w.rss(t)
		if n <= limit || time.Since(start) > max {
			return n, time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkMetrics reads the refusals and memory releases from /metrics.
func (w *workerProcess) checkMetrics(t *testing.T) {
	t.Helper()
	// The release runs in the background once the burst's last request is
	// done: poll for it a while rather than read the metrics once.
	var values map[string]float64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		values = w.metricValues(t)
		if values["audit_memory_releases_total"] >= 1 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("metrics: in flight %g bytes of %g, refused busy %g, memory releases %g",
		values["audit_http_ingest_in_flight_bytes"], values["audit_http_ingest_budget_bytes"],
		values[`audit_http_ingest_refused_total{reason="busy"}`], values["audit_memory_releases_total"])
	if values["audit_http_ingest_in_flight_bytes"] != 0 || values["audit_http_ingest_budget_bytes"] != memBudget {
		t.Errorf("in-flight metrics after the burst: %g of %g bytes, want 0 of %d",
			values["audit_http_ingest_in_flight_bytes"], values["audit_http_ingest_budget_bytes"], memBudget)
	}
	if values["audit_memory_releases_total"] < 1 {
		t.Error("no memory release counted within 15 s of the burst")
	}
}

// metricValues reads the worker's /metrics as name (with labels) → value.
func (w *workerProcess) metricValues(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := w.do(http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for line := range strings.SplitSeq(string(text), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			f, _ := strconv.ParseFloat(v, 64)
			values[name] = f
		}
	}
	return values
}

const (
	// sqliteMemRows is how many events TestSQLiteMemoryIsBounded stores
	// (AUDIT_MEMORY_TEST_SQLITE_ROWS overrides it): past the point where a
	// page cache sized by the database would have filled.
	sqliteMemRows = 80_000
	// sqliteMemMargin is what the store may add to the idle worker: the
	// writer's page cache (8 MiB, about 40 MiB resident), the readers'
	// caches and the batches in flight.
	sqliteMemMargin = 96 << 20
)

// TestSQLiteMemoryIsBounded runs the embedded worker (SQLite) as its own
// process, stores sqliteMemRows realistic events through HTTP, and checks
// that its resident memory levels off instead of growing with the database.
func TestSQLiteMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 80,000 events through a worker process; skipped with -short")
	}
	rows := sqliteMemRows
	if v := os.Getenv("AUDIT_MEMORY_TEST_SQLITE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("AUDIT_MEMORY_TEST_SQLITE_ROWS: %v", err)
		}
		rows = n
	}
	bin := workerBinaryForTest(t)
	key := "memory-test-key-0123456789"
	addr := freeAddress(t)
	cfgPath := filepath.Join(t.TempDir(), "worker.json")
	writeJSONFile(t, cfgPath, map[string]any{
		"http":    map[string]any{"address": addr, "apiKeys": []string{key}},
		"storage": map[string]any{"dataDir": t.TempDir()},
		"logging": map[string]any{"level": "warn"},
	})
	w := startWorkerProcess(t, bin, cfgPath, "http://"+addr, key)

	const perRequest = 1000
	g := eventgen.New(91)
	body := func() []byte {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range perRequest {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(g.Valid())
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	w.post(t, body(), "") // warm-up: opens the database's connections
	idle := w.rss(t)
	sampler := w.sampleRSS(100 * time.Millisecond)
	start := time.Now()
	for sent := perRequest; sent < rows; sent += perRequest {
		if code := w.post(t, body(), ""); code != http.StatusOK {
			t.Fatalf("after %d events: status %d", sent, code)
		}
		if sent%50_000 == 0 {
			t.Logf("%d events: RSS %d MiB (%s)", sent, w.rss(t)>>20, w.memoryBreakdown(t))
		}
	}
	peak := sampler.stop()
	t.Logf("SQLite: %d events in %.1f s; RSS idle %d MiB, peak %d MiB (limit %d MiB), end %d MiB (%s)",
		rows, time.Since(start).Seconds(), idle>>20, peak>>20, (idle+sqliteMemMargin)>>20, w.rss(t)>>20, w.memoryBreakdown(t))
	if peak > idle+sqliteMemMargin {
		t.Errorf("peak RSS %d MiB over idle %d MiB + %d MiB: the store's memory grows with the database",
			peak>>20, idle>>20, sqliteMemMargin>>20)
	}
}

// memoryBreakdown says where the worker's memory is: the Go heap in use (from
// /metrics) and the anonymous, file-backed and shared parts of its RSS.
func (w *workerProcess) memoryBreakdown(t *testing.T) string {
	t.Helper()
	heap := w.metricValues(t)["go_memstats_heap_inuse_bytes"]
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{fmt.Sprintf("Go heap in use %d MiB", int64(heap)>>20)}
	for line := range strings.SplitSeq(string(status), "\n") {
		for _, field := range []string{"RssAnon:", "RssFile:", "RssShmem:"} {
			if v, ok := strings.CutPrefix(line, field); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				parts = append(parts, fmt.Sprintf("%s %d MiB", strings.TrimSuffix(field, ":"), kb>>10))
			}
		}
	}
	return strings.Join(parts, ", ")
}
