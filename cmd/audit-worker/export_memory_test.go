package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/sqlite"
)

const (
	// exportMemRows is how many events TestExportMemoryIsFlat exports;
	// AUDIT_EXPORT_TEST_ROWS overrides it, and AUDIT_EXPORT_TEST_ROWS=1000000
	// is the full run (the default keeps CI fast).
	exportMemRows = 50_000
	// exportMemGrowth is how far the worker's RSS may rise above its size
	// before the export: the store's readers and their page caches, one
	// batch of events in hand, the response's buffers, the collector's room.
	exportMemGrowth = 60 << 20
	// exportMemLateGrowth is how much the RSS may still rise once a quarter
	// of the export is sent: a store read in keyset batches has nothing
	// that grows with the rows.
	exportMemLateGrowth = 16 << 20
)

// TestExportMemoryIsFlat fills a SQLite store, exports every event through
// GET /v1/events/export from a worker running as its own process while its
// RSS is sampled every 100 ms, and checks that the RSS rises by at most
// exportMemGrowth and stays flat after the first quarter of the rows.
func TestExportMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("exports 50,000 events through a worker process; skipped with -short")
	}
	rows := exportMemRows
	if v := os.Getenv("AUDIT_EXPORT_TEST_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("AUDIT_EXPORT_TEST_ROWS: a positive number of rows (is %q)", v)
		}
		rows = n
	}
	dataDir := t.TempDir()
	fillStart := time.Now()
	fillExportStore(t, filepath.Join(dataDir, "audit.db"), rows)
	fillTime := time.Since(fillStart)

	bin := workerBinaryForTest(t)
	key := "export-memory-test-key-0123456789abcdef"
	addr := freeAddress(t)
	cfgPath := filepath.Join(t.TempDir(), "worker.json")
	writeJSONFile(t, cfgPath, map[string]any{
		"http": map[string]any{"address": addr,
			"keys": []map[string]any{{"name": "exporter", "key": key, "role": "auditor", "organizations": []string{"*"}}}},
		"storage": map[string]any{"dataDir": dataDir},
		"logging": map[string]any{"level": "warn"},
	})
	w := startWorkerProcess(t, bin, cfgPath, "http://"+addr, key)
	time.Sleep(time.Second)
	start := w.rss(t)

	samples := w.sampleRSSOver(100 * time.Millisecond)
	began := time.Now()
	got := w.exportAll(t, samples)
	elapsed := time.Since(began)
	trace := samples.stop()

	peak, quarterPeak := start, start
	for _, s := range trace {
		peak = max(peak, s.rss)
		if s.rows <= got.rows/4 {
			quarterPeak = max(quarterPeak, s.rss)
		}
	}
	t.Logf("export of %d rows (%d MiB of NDJSON) in %.1f s, %.0f rows/s (store filled in %.1f s); RSS before %d MiB, "+
		"peak %d MiB (+%d MiB, bound +%d MiB), peak in the first quarter %d MiB, after %d MiB; %d samples",
		got.rows, got.bytes>>20, elapsed.Seconds(), float64(got.rows)/elapsed.Seconds(), fillTime.Seconds(),
		start>>20, peak>>20, (peak-start)>>20, exportMemGrowth>>20, quarterPeak>>20, w.rss(t)>>20, len(trace))
	if got.rows < int64(rows) {
		t.Errorf("%d rows exported, want all %d", got.rows, rows)
	}
	if peak-start > exportMemGrowth {
		t.Errorf("RSS rose by %d MiB during the export, over the bound of %d MiB", (peak-start)>>20, exportMemGrowth>>20)
	}
	if peak-quarterPeak > exportMemLateGrowth {
		t.Errorf("RSS rose by %d MiB after the first quarter of the rows (bound %d MiB): memory grows with the export",
			(peak-quarterPeak)>>20, exportMemLateGrowth>>20)
	}
	w.checkExportManifest(t, got)
}

// fillExportStore stores n realistic events, hashed as the producer does,
// within the last hour and a half (inside the export's default window).
func fillExportStore(t *testing.T, path string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := eventgen.New(43)
	// eventgen spaces events 3 ms apart: a million take 50 minutes.
	g.Start = time.Now().UTC().Add(-90 * time.Minute).Truncate(time.Millisecond)
	const batch = 5000
	for done := 0; done < n; done += batch {
		recs := g.Records(min(batch, n-done), "export-memory-test")
		if _, err := s.StoreBatch(ctx, audit.Batch{Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
}

// rssSample is the worker's RSS when the client had received rows rows.
type rssSample struct {
	rows int64
	rss  int64
}

// rssTrace samples the worker's RSS with the rows received so far.
type rssTrace struct {
	rows    atomic.Int64
	samples []rssSample
	done    chan struct{}
	wg      sync.WaitGroup
}

func (w *workerProcess) sampleRSSOver(every time.Duration) *rssTrace {
	tr := &rssTrace{done: make(chan struct{})}
	pid := w.cmd.Process.Pid
	tr.wg.Go(func() {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			if n, err := readRSS(pid); err == nil {
				tr.samples = append(tr.samples, rssSample{rows: tr.rows.Load(), rss: n})
			}
			select {
			case <-tr.done:
				return
			case <-ticker.C:
			}
		}
	})
	return tr
}

func (tr *rssTrace) stop() []rssSample {
	close(tr.done)
	tr.wg.Wait()
	return tr.samples
}

// exported is what the client received.
type exported struct {
	id, sha256, trailerSHA256 string
	rows, bytes               int64
}

// exportAll reads a whole NDJSON export, counting its lines into tr as they
// arrive, and hashing them.
func (w *workerProcess) exportAll(t *testing.T, tr *rssTrace) exported {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Minute}
	req, err := http.NewRequest(http.MethodGet, w.url+"/v1/events/export?format=ndjson", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	sum := sha256.New()
	r := bufio.NewReaderSize(io.TeeReader(resp.Body, sum), 1<<20)
	var got exported
	for {
		line, err := r.ReadSlice('\n')
		got.bytes += int64(len(line))
		if len(line) > 0 && line[len(line)-1] == '\n' {
			got.rows++
			tr.rows.Store(got.rows)
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			t.Fatalf("export after %d rows: %v", got.rows, err)
		}
	}
	got.id, got.sha256, got.trailerSHA256 = resp.Header.Get("X-Export-Id"), hex.EncodeToString(sum.Sum(nil)), resp.Trailer.Get("X-Export-SHA256")
	return got
}

// checkExportManifest checks that the kept manifest describes the bytes the
// client received.
func (w *workerProcess) checkExportManifest(t *testing.T, got exported) {
	t.Helper()
	resp, err := w.do(http.MethodGet, "/v1/exports/"+got.id, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m audit.ExportManifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest %s: %v\n%s", got.id, err, bytes.TrimSpace(body))
	}
	if m.RowCount != got.rows || m.Bytes != got.bytes || m.SHA256 != got.sha256 || got.trailerSHA256 != got.sha256 || !m.Complete {
		t.Errorf("manifest %d rows, %d bytes, sha256 %s, complete %v; received %d rows, %d bytes, sha256 %s (trailer %s)",
			m.RowCount, m.Bytes, m.SHA256, m.Complete, got.rows, got.bytes, got.sha256, got.trailerSHA256)
	}
}
