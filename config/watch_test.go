package config

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

type delivery struct {
	cfg  Config
	meta Meta
}

// startWatcher runs a watcher until the test ends and returns it with the
// channel its deliveries arrive on.
func startWatcher(t *testing.T, src Source, opts WatcherOptions) (*Watcher, <-chan delivery) {
	t.Helper()
	got := make(chan delivery, 16)
	w := NewWatcher(src, func(c Config, m Meta) { got <- delivery{c, m} }, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context ending")
		}
	})
	return w, got
}

func waitDelivery(t *testing.T, got <-chan delivery, timeout time.Duration, what string) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(timeout):
		t.Fatalf("%s: no configuration delivered within %s", what, timeout)
		return delivery{}
	}
}

func noDelivery(t *testing.T, got <-chan delivery, wait time.Duration, what string) {
	t.Helper()
	select {
	case d := <-got:
		t.Fatalf("%s: unexpected delivery of version %s", what, d.meta.Version)
	case <-time.After(wait):
	}
}

// syncBuffer is a log destination the watcher goroutine and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// infoConfigFile writes a configuration with the info log level to
// worker.json in dir and loads it as a worker starts (caching it in cache,
// when set).
func infoConfigFile(t *testing.T, dir, cache string) (path string, src *FileSource, start Loaded) {
	t.Helper()
	path = filepath.Join(dir, "worker.json")
	writeFile(t, path, `{"logging":{"level":"info"}}`)
	src = NewFileSource(path, SourceOptions{})
	start, err := LoadInitial(context.Background(), src, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, src, start
}

func testLogger() (*slog.Logger, *syncBuffer) {
	buf := new(syncBuffer)
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// With an hour-long poll interval only fsnotify can notice changes: a rewrite
// in place and a replacement by rename (what editors and deploy tools do) are
// both seen, and a touch that changes nothing is checked but not delivered.
func TestWatcherFileEventsRewriteRenameTouch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, src, start := infoConfigFile(t, dir, "")
	log, _ := testLogger()
	w, got := startWatcher(t, src, WatcherOptions{Interval: time.Hour, Debounce: 20 * time.Millisecond, Start: start, Logger: log})
	testenv.Eventually(t, 5*time.Second, "first check", func() bool { return !w.Status().LastCheck.IsZero() })
	if st := w.Status(); st.Mode != "fsnotify+poll" || st.Version != start.Meta.Version {
		t.Fatalf("status after start: %+v", st)
	}
	noDelivery(t, got, 50*time.Millisecond, "unchanged start")

	writeFile(t, path, `{"logging":{"level":"debug"}}`)
	d := waitDelivery(t, got, 5*time.Second, "rewrite in place")
	if d.cfg.Logging.Level != "debug" || d.meta.Source != src.String() || d.meta.Version == start.Meta.Version {
		t.Errorf("rewrite delivered %+v", d)
	}

	tmp := filepath.Join(dir, ".worker.json.swp")
	writeFile(t, tmp, `{"logging":{"level":"warn"}}`)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	d = waitDelivery(t, got, 5*time.Second, "replace by rename")
	if d.cfg.Logging.Level != "warn" {
		t.Errorf("rename delivered level %q", d.cfg.Logging.Level)
	}
	if st := w.Status(); st.Version != d.meta.Version || st.LastError != "" {
		t.Errorf("status after rename: %+v", st)
	}

	before := w.Status().LastCheck
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "check after touch", func() bool { return w.Status().LastCheck.After(before) })
	noDelivery(t, got, 100*time.Millisecond, "touch")
	if st := w.Status(); st.Version != d.meta.Version {
		t.Errorf("touch changed the version: %+v", st)
	}

	// Other files in the directory do not trigger reads.
	before = w.Status().LastCheck
	writeFile(t, filepath.Join(dir, "unrelated.txt"), "x")
	time.Sleep(200 * time.Millisecond)
	if w.Status().LastCheck != before {
		t.Error("a write to another file in the directory triggered a check")
	}
}

// An invalid document is refused: logged with its field errors, counted once,
// the running configuration stays; the next valid one is applied.
func TestWatcherRefusesInvalidDocument(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cache := CachePath(filepath.Join(dir, "data"))
	path, src, start := infoConfigFile(t, dir, cache)
	log, logs := testLogger()
	var refusals atomic.Int64
	w, got := startWatcher(t, src, WatcherOptions{Interval: 50 * time.Millisecond, Debounce: 10 * time.Millisecond, Start: start, Logger: log, CachePath: cache,
		OnRefused: func(err error) {
			if strings.Contains(err.Error(), "worker.port") {
				refusals.Add(1)
			}
		}})

	writeFile(t, path, `{"worker":{"port":70000},"logging":{"level":"loud"}}`)
	testenv.Eventually(t, 5*time.Second, "refusal", func() bool { return w.Rejected() == 1 })
	noDelivery(t, got, 300*time.Millisecond, "invalid document") // several polls: still counted once
	if n := w.Rejected(); n != 1 {
		t.Errorf("Rejected() = %d after several polls of the same invalid document, want 1", n)
	}
	if n := refusals.Load(); n != 1 {
		t.Errorf("OnRefused called %d times with the reason, want 1", n)
	}
	st := w.Status()
	if st.Version != start.Meta.Version || st.Rejected != 1 || !strings.Contains(st.LastError, "worker.port") {
		t.Errorf("status after refusal: %+v", st)
	}
	for _, want := range []string{"new configuration refused", "worker.port: must be between 1 and 65535", "logging.level"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if c, err := ReadCache(cache); err != nil || c.Version != start.Meta.Version {
		t.Errorf("cache after refusal: %+v, %v; want the last good version", c, err)
	}

	// Back to the running document: not a delivery, but the error clears.
	writeFile(t, path, `{"logging":{"level":"info"}}`)
	testenv.Eventually(t, 5*time.Second, "error cleared", func() bool { return w.Status().LastError == "" })
	noDelivery(t, got, 100*time.Millisecond, "revert to the running version")

	writeFile(t, path, `{"logging":{"level":"error"}}`)
	d := waitDelivery(t, got, 5*time.Second, "valid document after the refused one")
	if d.cfg.Logging.Level != "error" {
		t.Errorf("delivered level %q", d.cfg.Logging.Level)
	}
	if c, err := ReadCache(cache); err != nil || c.Version != d.meta.Version {
		t.Errorf("cache after reload: %+v, %v", c, err)
	}
}

// When the directory cannot be watched the watcher polls, and still sees the
// file appear. Without a start configuration the first good one is delivered.
func TestWatcherFallsBackToPolling(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "not-yet")
	path := filepath.Join(dir, "worker.json")
	src := NewFileSource(path, SourceOptions{})
	log, logs := testLogger()
	w, got := startWatcher(t, src, WatcherOptions{Interval: 50 * time.Millisecond, Logger: log})
	testenv.Eventually(t, 5*time.Second, "first check", func() bool { return w.Status().LastError != "" })
	if st := w.Status(); st.Mode != "poll" || !strings.Contains(st.LastError, "not found") {
		t.Errorf("status: %+v", st)
	}
	if !strings.Contains(logs.String(), "polling only") {
		t.Errorf("log lacks the fallback warning:\n%s", logs)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, `{"logging":{"level":"warn"}}`)
	d := waitDelivery(t, got, 5*time.Second, "file created while polling")
	if d.cfg.Logging.Level != "warn" {
		t.Errorf("delivered level %q", d.cfg.Logging.Level)
	}
}

// A custom parse function replaces Parse, and its errors are refusals too.
func TestWatcherCustomParse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "worker.json")
	writeFile(t, path, "level=debug")
	parse := func(doc []byte) (Config, error) {
		level, ok := strings.CutPrefix(string(doc), "level=")
		if !ok {
			return Config{}, os.ErrInvalid
		}
		c := Default()
		c.Logging.Level = level
		return c, nil
	}
	log, _ := testLogger()
	w, got := startWatcher(t, NewFileSource(path, SourceOptions{}), WatcherOptions{Interval: 50 * time.Millisecond, Debounce: 10 * time.Millisecond, Parse: parse, Logger: log})
	if d := waitDelivery(t, got, 5*time.Second, "first"); d.cfg.Logging.Level != "debug" {
		t.Errorf("level %q", d.cfg.Logging.Level)
	}
	writeFile(t, path, "garbage")
	testenv.Eventually(t, 5*time.Second, "refusal", func() bool { return w.Rejected() == 1 })
}

// Run stops everything it started when its context ends, and refuses to run twice at once.
func TestWatcherRunLeavesNoGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.json")
	writeFile(t, path, `{}`)
	before := runtime.NumGoroutine()
	log, _ := testLogger()
	w := NewWatcher(NewFileSource(path, SourceOptions{}), nil, WatcherOptions{Interval: 10 * time.Millisecond, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	testenv.Eventually(t, 5*time.Second, "first check", func() bool { return w.Status().Version != "" })
	if err := w.Run(ctx); err == nil {
		t.Error("a second concurrent Run was allowed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}

// An empty file (the middle of a truncate-and-write) is neither refused nor counted.
func TestWatcherWaitsOutEmptyDocument(t *testing.T) {
	t.Parallel()
	path, src, start := infoConfigFile(t, t.TempDir(), "")
	log, _ := testLogger()
	w, got := startWatcher(t, src, WatcherOptions{Interval: 50 * time.Millisecond, Debounce: 10 * time.Millisecond, Start: start, Logger: log})
	writeFile(t, path, "")
	testenv.Eventually(t, 5*time.Second, "empty document noticed", func() bool { return w.Status().LastError == "document is empty" })
	noDelivery(t, got, 150*time.Millisecond, "empty document")
	if w.Rejected() != 0 {
		t.Errorf("Rejected() = %d for an empty document, want 0", w.Rejected())
	}
	writeFile(t, path, `{"logging":{"level":"debug"}}`)
	if d := waitDelivery(t, got, 5*time.Second, "document written after the empty state"); d.cfg.Logging.Level != "debug" {
		t.Errorf("level %q", d.cfg.Logging.Level)
	}
}

// failingSource fails every fetch with an error that quotes its endpoint,
// credentials included, as SDK and network errors do.
type failingSource struct{}

func (failingSource) Fetch(context.Context, string) ([]byte, string, error) {
	return nil, "", fmt.Errorf("get http://key:fetch-pw@127.0.0.1:1/b/k: %w", ErrSourceUnavailable)
}

func (failingSource) String() string { return "failing" }

// The watcher's status and log never carry a secret from a fetch error or
// from the reason the worker started degraded.
func TestWatcherRedactsErrors(t *testing.T) {
	log, logged := testLogger()
	w, _ := startWatcher(t, failingSource{}, WatcherOptions{Interval: time.Hour, Logger: log,
		Start: Loaded{Degraded: true, Reason: "get http://key:start-pw@127.0.0.1:1/b/k: unreachable"}})
	if st := w.Status(); strings.Contains(st.LastError, "start-pw") {
		t.Errorf("start reason shown: %q", st.LastError)
	}
	testenv.Eventually(t, 5*time.Second, "the first check", func() bool { return !w.Status().LastCheck.IsZero() })
	st := w.Status()
	if !strings.Contains(st.LastError, "http://key:***@127.0.0.1:1") || strings.Contains(st.LastError, "fetch-pw") {
		t.Errorf("LastError = %q, want the endpoint redacted", st.LastError)
	}
	if strings.Contains(logged.String(), "fetch-pw") || !strings.Contains(logged.String(), "check failed") {
		t.Errorf("log: %s", logged.String())
	}
}
