package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the test reads the worker's SQLite file

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// diskSize is the tmpfs the SQLite store lives on: small enough to fill in a
// moment, large enough for the schema, the WAL and a few thousand events.
const diskSize = "16m"

// mountTmpfs mounts a tmpfs of size on a new directory and unmounts it at
// cleanup. Without the right to mount (not root) the test skips, or fails
// with AUDIT_TEST_REQUIRE_SERVICES=1.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "a tmpfs mount (run as root)", "run the test as root: it mounts a "+size+" tmpfs",
			fmt.Errorf("mount -t tmpfs: %v: %s", err, bytes.TrimSpace(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a filler file until the file system refuses (ENOSPC).
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
		if w < len(chunk) {
			chunk = chunk[:len(chunk)-w] // the tail that did not fit: try it once more
		}
	}
	// Smaller writes take the last free pages too.
	for _, size := range []int{4096, 512, 1} {
		for {
			w, err := f.Write(make([]byte, size))
			n += int64(w)
			if err != nil {
				break
			}
		}
	}
	return n
}

// freeBytes is what the file system under path has left for an unprivileged
// writer.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// startedURL waits for the start line, logged just after the worker begins
// consuming (what startWorker waits for), and returns its HTTP address.
func startedURL(t *testing.T, logPath string) string {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the start line with the HTTP address", func() bool {
		return logContains(logPath, 0, "audit worker started")
	})
	return workerURL(t, logPath)
}

// writeSQLiteConfig writes the configuration of a worker on the embedded
// SQLite store in dataDir, consuming the test's queue and taking HTTP ingest.
func (e *env) writeSQLiteConfig(name, dataDir string) string {
	e.t.Helper()
	cfg := map[string]any{
		"redis": map[string]any{"url": e.redisURL, "keyPrefix": e.prefix},
		"reliableProcessor": map[string]any{
			"queueName": queueName, "concurrency": 2, "batchSize": 50,
			"circuitBreakerConfig": map[string]any{"failureThreshold": 3, "recoveryTimeout": 1000},
			"deadLetterConfig":     map[string]any{"queueName": deadQueueName},
		},
		"http":       map[string]any{"address": "127.0.0.1:0", "apiKeys": []string{ingestKey}},
		"storage":    map[string]any{"dataDir": dataDir},
		"logging":    map[string]any{"format": "json", "level": "info"},
		"monitoring": map[string]any{"enabled": false},
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// diskEvent is one valid event; i makes it distinct.
func diskEvent(i int) []byte {
	data, _ := json.Marshal(map[string]any{
		"timestamp":      time.Now().UTC().Format(time.RFC3339Nano),
		"action":         "document.read",
		"status":         "success",
		"principalId":    fmt.Sprintf("u-disk-%d", i),
		"organizationId": "org-disk",
		"details":        map[string]any{"padding": strings.Repeat("x", 400)},
	})
	return data
}

// ingestReply is one POST /v1/events: its status, the error body, and how
// long the worker took.
type ingestReply struct {
	status  int
	stored  int
	message string
	took    time.Duration
}

// postBatch posts n events (one NDJSON request) with an Idempotency-Key, so
// that the stored rows are "http:<key>/<i>".
func postBatch(t *testing.T, client *http.Client, base, key string, first, n int) ingestReply {
	t.Helper()
	var body bytes.Buffer
	for i := range n {
		body.Write(diskEvent(first + i))
		body.WriteByte('\n')
	}
	return post(t, client, base, key, "application/x-ndjson", body.Bytes())
}

func post(t *testing.T, client *http.Client, base, key, contentType string, body []byte) ingestReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ingestKey)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Idempotency-Key", key)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/events (key %s): %v after %s (a hang counts as a failure)", key, err, time.Since(start).Round(time.Millisecond))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := ingestReply{status: resp.StatusCode, took: time.Since(start), message: string(bytes.TrimSpace(raw))}
	var ok struct {
		Stored int `json:"stored"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(raw, &ok) == nil {
		r.stored = ok.Stored
	}
	return r
}

// readyz returns the readiness status and body.
func readyz(t *testing.T, client *http.Client, base string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+ingestKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(raw))
}

// TestSQLiteFullDisk runs the worker with its SQLite file on a 16 MiB tmpfs,
// fills the disk while events come over HTTP and from the queue, and checks
// that ingest refuses with 503 (never 500, never a hang), readiness reports
// the store, nothing is half-written, and ingest resumes by itself once the
// filler is deleted, with every acknowledged and every queued event stored
// exactly once and every refused one absent.
func TestSQLiteFullDisk(t *testing.T) {
	e := newEnv(t)
	disk := mountTmpfs(t, diskSize)
	dataDir := filepath.Join(disk, "data")
	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	cfg := e.writeSQLiteConfig("worker.json", dataDir)
	p := e.startWorker(cfg, logPath)
	base := startedURL(t, logPath)
	client := &http.Client{Timeout: 30 * time.Second}
	q := bullmq.NewQueue(e.rdb, queueName, bullmq.QueueOptions{Prefix: e.prefix})
	ctx := context.Background()

	acked := map[string]bool{}   // http keys answered "stored"
	refused := map[string]bool{} // http keys answered 503
	queued := 0
	enqueue := func(n int) {
		jobs := make([]bullmq.NewJob, n)
		for i := range jobs {
			jobs[i] = bullmq.NewJob{Name: queueName, Data: diskEvent(100000 + queued + i)}
		}
		if _, err := q.AddBulk(ctx, jobs); err != nil {
			t.Fatal(err)
		}
		queued += n
	}
	const perRequest = 20
	send := func(batch int) ingestReply {
		key := fmt.Sprintf("disk-%d", batch)
		r := postBatch(t, client, base, key, batch*perRequest, perRequest)
		switch r.status {
		case http.StatusOK:
			if r.stored != perRequest {
				t.Fatalf("batch %s: %d stored of %d: %s", key, r.stored, perRequest, r.message)
			}
			for i := range perRequest {
				acked[fmt.Sprintf("http:%s/%d", key, i)] = true
			}
		case http.StatusServiceUnavailable:
			for i := range perRequest {
				refused[fmt.Sprintf("http:%s/%d", key, i)] = true
			}
		default:
			t.Fatalf("batch %s: HTTP %d after %s, want 200 or 503: %s", key, r.status, r.took.Round(time.Millisecond), r.message)
		}
		return r
	}

	// Before: the disk has room.
	batch := 0
	for ; batch < 10; batch++ {
		if r := send(batch); r.status != http.StatusOK {
			t.Fatalf("before the disk is full: HTTP %d: %s", r.status, r.message)
		}
	}
	enqueue(200)
	filler := filepath.Join(disk, "filler")
	filled := fillDisk(t, filler)
	t.Logf("filler: %d bytes, %d bytes left on the tmpfs", filled, freeBytes(t, disk))

	// While full: ingest is refused with 503 and a clear message, within the
	// client's timeout; the queue keeps its jobs.
	var first503 ingestReply
	var maxTook time.Duration
	fullSince := time.Now()
	for ; time.Since(fullSince) < 20*time.Second; batch++ {
		r := send(batch)
		maxTook = max(maxTook, r.took)
		if r.status == http.StatusServiceUnavailable {
			first503 = r
			break
		}
	}
	if first503.status == 0 {
		t.Fatalf("ingest still answers 200 20 s after the disk filled up (%d bytes free)", freeBytes(t, disk))
	}
	t.Logf("first 503 after %s (request took %s): %s", time.Since(fullSince).Round(time.Millisecond), first503.took.Round(time.Millisecond), first503.message)
	if !strings.Contains(first503.message, "retry later") || !strings.Contains(strings.ToLower(first503.message), "full") {
		t.Errorf("503 body %q does not say the disk is full and to retry", first503.message)
	}
	for range 5 {
		r := send(batch)
		batch++
		maxTook = max(maxTook, r.took)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.message, "disk is full") {
			t.Errorf("while full: HTTP %d, want 503 saying the disk is full: %s", r.status, r.message)
		}
	}
	enqueue(200)
	// A job that is not an event goes to the dead letters too; with no room
	// for them it stays in the queue.
	if _, err := q.Add(ctx, queueName, []byte(`{"note": "not an event"}`), bullmq.JobOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if st, err := os.Stat(filepath.Join(dataDir, "audit.db"+suffix)); err == nil {
			t.Logf("while full: audit.db%s is %d bytes", suffix, st.Size())
		}
	}
	// A payload that is not JSON goes to the dead letters: with no room for
	// them either, it is refused as well, not dropped.
	bad := post(t, client, base, "disk-bad", "application/json", []byte(`{"action": `))
	if bad.status != http.StatusServiceUnavailable {
		t.Errorf("a dead letter on a full disk: HTTP %d, want 503: %s", bad.status, bad.message)
	}
	code, body := readyz(t, client, base)
	t.Logf("readyz while full: %d %s", code, body)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "database") {
		t.Errorf("readyz while the disk is full = %d %s, want 503 naming the database", code, body)
	}
	t.Logf("longest ingest request while filling: %s", maxTook.Round(time.Millisecond))

	// After: the filler goes, ingest and the queue resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var resumed time.Duration
	for {
		r := send(batch)
		batch++
		if r.status == http.StatusOK {
			resumed = time.Since(freed)
			break
		}
		if time.Since(freed) > 15*time.Second {
			t.Fatalf("ingest still refused %s after the filler was deleted: HTTP %d %s", time.Since(freed).Round(time.Second), r.status, r.message)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ingest resumed %s after the filler was deleted", resumed.Round(time.Millisecond))
	testenv.Eventually(t, 10*time.Second, "readyz 200 after the disk has room", func() bool {
		code, _ := readyz(t, client, base)
		return code == http.StatusOK
	})
	// Retried with its key, the refused payload is now kept as a dead letter.
	bad = post(t, client, base, "disk-bad", "application/json", []byte(`{"action": `))
	if bad.status != http.StatusUnprocessableEntity || !strings.Contains(bad.message, `"rejected":1`) {
		t.Errorf("dead letter after recovery: HTTP %d, want 422 with the event rejected: %s", bad.status, bad.message)
	}
	testenv.Eventually(t, 30*time.Second, "queue drained", func() bool {
		c, err := e.queueCounts(ctx, queueName)
		return err == nil && pending(c) == 0
	})
	dbPath := filepath.Join(dataDir, "audit.db")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The tree integrator, whose passes failed while the disk was full,
	// catches up: every row becomes a leaf.
	var rowsN, leavesN int
	if !testenv.Until(20*time.Second, func() bool {
		err := db.QueryRow(`SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM tlog_leaves)`).Scan(&rowsN, &leavesN)
		return err == nil && rowsN == leavesN
	}) {
		t.Errorf("tree integrator: %d leaves for %d rows 20 s after the disk had room", leavesN, rowsN)
	}
	if err := p.stop(t, 15*time.Second); err != nil {
		t.Errorf("worker stop: %v", err)
	}

	// The file: intact, every acknowledged and queued event once, no refused one.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if st, err := os.Stat(dbPath + suffix); err == nil {
			t.Logf("after stop: %s is %d bytes", filepath.Base(dbPath+suffix), st.Size())
		}
	}
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("PRAGMA integrity_check = %q, %v", integrity, err)
	}
	counts := map[string]int{}
	rows, err := db.Query(`SELECT idempotency_key, count(*) FROM audit_log GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		counts[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var missing, doubled, refusedStored, queuedRows int
	for k := range acked {
		switch counts[k] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	for k := range refused {
		if counts[k] > 0 && !acked[k] {
			refusedStored++
		}
	}
	for k, n := range counts {
		if strings.HasPrefix(k, "bullmq:") {
			queuedRows++
			if n != 1 {
				doubled++
			}
		}
	}
	var deadLetters, queueDeadLetters int
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE idempotency_key = 'http:disk-bad'),
		count(*) FILTER (WHERE idempotency_key LIKE 'bullmq:%') FROM audit_dead_letter`).Scan(&deadLetters, &queueDeadLetters); err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged %d, refused %d, queued %d; rows: %d acknowledged missing, %d doubled, %d refused but stored, %d queued stored, dead letters: %d from HTTP, %d from the queue",
		len(acked), len(refused), queued, missing, doubled, refusedStored, queuedRows, deadLetters, queueDeadLetters)
	if missing != 0 || doubled != 0 || refusedStored != 0 || queuedRows != queued || deadLetters != 1 || queueDeadLetters != 1 {
		t.Errorf("want every acknowledged and queued event once (%d, %d), no refused one, one dead letter from each source", len(acked), queued)
	}
	// The job that is not an event failed once and sits in the dead-letter
	// queue once, as on a disk with room; nothing else is left.
	mainQ, err := e.queueCounts(ctx, queueName)
	if err != nil {
		t.Fatal(err)
	}
	deadQ, err := e.queueCounts(ctx, deadQueueName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis: queue %v, dead-letter queue %v", mainQ, deadQ)
	if pending(mainQ) != 0 || mainQ["failed"] != 1 || mainQ["completed"] != int64(queued) || pending(deadQ) != 1 {
		t.Errorf("queue %v, dead-letter queue %v: want %d completed, 1 failed, 1 dead letter waiting", mainQ, deadQ, queued)
	}
}
