package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/internal/soakstat"
	"github.com/smartlogs/audit-worker/monitor"
)

// soakInterval is how often the soak samples the worker.
const soakInterval = 10 * time.Second

// TestSoak runs only with AUDIT_E2E_SOAK=1: the worker on PostgreSQL and Redis
// with the pattern detectors on, a Node producer offering AUDIT_E2E_SOAK_RATE
// events/s (default 5000) for AUDIT_E2E_SOAK_MINUTES (default 50). Every 10 s
// it samples the worker's RSS, goroutines and open files, Redis used_memory
// and the p99 end-to-end latency of the rows stored since the last sample
// (ingested_at − received_at, as the benchmark's latency phase), into a CSV
// (AUDIT_E2E_SOAK_CSV, default in the test's directory). It fails when a
// metric grows over the second half of the run (soakstat.Judge; Redis
// memory, which holds the detectors' log of the last 35 minutes, only after
// those minutes, so a run shorter than 45 minutes fails as not judged) or
// when an event is lost or stored twice. scripts/soak.sh runs it and draws the CSV.
func TestSoak(t *testing.T) {
	if os.Getenv("AUDIT_E2E_SOAK") != "1" {
		t.Skip("set AUDIT_E2E_SOAK=1 to run the soak (AUDIT_E2E_SOAK_MINUTES, default 50)")
	}
	minutes := envInt(t, "AUDIT_E2E_SOAK_MINUTES", 50)
	rate := envInt(t, "AUDIT_E2E_SOAK_RATE", 5000)
	e := newEnv(t)
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	csvPath := os.Getenv("AUDIT_E2E_SOAK_CSV")
	if csvPath == "" {
		csvPath = filepath.Join(e.dir, "soak.csv")
	}
	f, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := soakstat.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}

	cfg := e.writeConfig("worker.json", workerConfig{Concurrency: 3, BatchSize: 500}) // the benchmark's settings
	w := e.startWorker(cfg, logPath)
	metricsURL := startedURL(t, logPath) + "/metrics"
	dur := time.Duration(minutes) * time.Minute
	idsFile := filepath.Join(e.dir, "ids.txt")
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	producer := e.nodeCmd(ctx, "stream.mjs", queueName, "--rate", strconv.Itoa(rate),
		"--duration-ms", strconv.FormatInt(dur.Milliseconds(), 10), "--deadline", "--tick-ms", "10", "--out", idsFile,
		"--watchdog-ms", strconv.FormatInt((dur+4*time.Minute).Milliseconds(), 10))
	var stdout, stderr bytes.Buffer
	producer.Stdout, producer.Stderr = &stdout, &stderr
	start := time.Now()
	if err := producer.Start(); err != nil {
		t.Fatalf("start stream.mjs: %v", err)
	}
	producerDone := make(chan error, 1)
	go func() { producerDone <- producer.Wait() }()

	// Sample every 10 s until the producer is done.
	var lastID int64
	var samples []soakstat.Sample
	tick := time.NewTicker(soakInterval)
	defer tick.Stop()
	var prodErr error
sampling:
	for {
		select {
		case prodErr = <-producerDone:
			break sampling
		case <-tick.C:
		}
		s := soakstat.Sample{Elapsed: time.Since(start).Seconds()}
		var err error
		if s.RSSKiB, err = procStatusKiB(w.pid(), "VmRSS:"); err != nil {
			t.Fatalf("worker RSS: %v", err)
		}
		m, err := readGauges(metricsURL, "go_goroutines", "process_open_fds")
		if err != nil {
			t.Fatalf("worker /metrics: %v", err)
		}
		s.Goroutines, s.OpenFDs = m["go_goroutines"], m["process_open_fds"]
		if s.RedisBytes, err = redisUsedMemory(ctx, e.rdb); err != nil {
			t.Fatalf("Redis INFO memory: %v", err)
		}
		var n int64
		var p99 *float64
		var maxID *int64
		err = e.pool.QueryRow(ctx, `SELECT count(*), percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - received_at) * 1000), max(id)
			FROM audit_log WHERE id > $1`, lastID).Scan(&n, &p99, &maxID)
		if err != nil {
			t.Fatalf("latency sample: %v", err)
		}
		s.P99Ms = math.NaN()
		if p99 != nil {
			s.P99Ms = *p99
		}
		if maxID != nil {
			lastID = *maxID
		}
		if s.Rows, err = e.idsIssuedFloat(ctx); err != nil {
			t.Fatalf("rows: %v", err)
		}
		samples = append(samples, s)
		if err := out.Write(s); err != nil {
			t.Fatal(err)
		}
		t.Logf("%4.0f s: RSS %.1f MiB, %.0f goroutines, %.0f fds, Redis %.1f MiB, p99 %.1f ms over %d rows, %.0f ids issued",
			s.Elapsed, s.RSSKiB/1024, s.Goroutines, s.OpenFDs, s.RedisBytes/(1<<20), s.P99Ms, n, s.Rows)
	}
	if prodErr != nil {
		t.Fatalf("stream.mjs: %v\nstdout: %s\nstderr: %s", prodErr, stdout.Bytes(), stderr.Bytes())
	}
	var res produced
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("stream.mjs output: %v: %s", err, stdout.Bytes())
	}
	t.Logf("producer: %d events in %d ms (%d/s offered, largest backlog %d)", res.Count, res.ElapsedMs, res.OfferedRate, res.MaxBehind)
	if res.OfferedRate < int64(rate)*9/10 {
		t.Errorf("the producer offered %d events/s, under 90 %% of the %d asked: the host could not carry the soak's load", res.OfferedRate, rate)
	}
	keys := e.readKeys(idsFile, res.Count)
	e.waitDrained(int64(res.Count), 5*time.Minute, logPath)
	if err := w.stop(t, 30*time.Second); err != nil {
		t.Errorf("worker stop: %v", err)
	}
	e.checkStored(keys)
	e.checkRedisClean()

	// Redis holds the detectors' log of the last LogRetention: its memory
	// rises until then by design, and is judged only after.
	settle := map[string]float64{"redis": monitor.LogRetention(monitor.DefaultConfig()).Seconds()}
	t.Logf("samples in %s; growth over the second half, Redis from minute %.0f (rise = fitted slope × the span):", csvPath, settle["redis"]/60)
	for _, j := range soakstat.Judge(samples, settle) {
		t.Log(j)
		switch {
		case !j.Judged:
			t.Errorf("%s", j)
		case j.Grows:
			t.Errorf("%s grows: %+.1f %s over minutes %.0f–%.0f, tolerance %.1f", j.Metric.Name, j.Rise, j.Metric.Unit, j.From, j.To, j.Tolerance)
		}
	}
}

// procStatusKiB reads one "Name: N kB" line of /proc/PID/status.
func procStatusKiB(pid int, field string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			return strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// readGauges reads unlabelled samples from a Prometheus text exposition.
func readGauges(url string, names ...string) (map[string]float64, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && want[name] {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return nil, fmt.Errorf("metric %s: %w", name, err)
			}
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no %s in %s", n, url)
		}
	}
	return out, nil
}

// redisUsedMemory is INFO memory's used_memory, in bytes.
func redisUsedMemory(ctx context.Context, rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

func (e *env) idsIssuedFloat(ctx context.Context) (float64, error) {
	n, err := e.idsIssued(ctx)
	return float64(n), err
}
