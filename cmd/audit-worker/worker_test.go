package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/sqlite"
)

// The producer hash's first test vector through the CLI, as an operator would run it.
func TestEventHashCommand(t *testing.T) {
	event := `{"timestamp":"2023-10-26T10:30:00.000Z","action":"userLogin","status":"success","principalId":"user-12345",
		"organizationId":"org-67890","targetResourceType":"User","targetResourceId":"user-12345",
		"outcomeDescription":"User logged in successfully","eventVersion":"1.0","hashAlgorithm":"SHA-256"}`
	var out bytes.Buffer
	cmd := newRootCommand()
	cmd.SetArgs([]string{"event", "hash", "--hmac-key", "test-secret-key-for-testing-purposes-only"})
	cmd.SetIn(strings.NewReader(event))
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := `{"hash":"1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7","signature":"f28d2a320fda4af94c2f50b867aa72d5f51735118e827eef82b1dd2cf88f0a44"}`
	if got := strings.TrimSpace(out.String()); got != want {
		t.Errorf("output = %s\nwant     %s", got, want)
	}

	out.Reset()
	cmd = newRootCommand()
	cmd.SetArgs([]string{"event", "hash", "--hmac-key", ""})
	cmd.SetIn(strings.NewReader(event))
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "signature") {
		t.Errorf("signature printed without a key: %s", out.String())
	}

	cmd = newRootCommand()
	cmd.SetArgs([]string{"event", "hash"})
	cmd.SetIn(strings.NewReader(`not json`))
	cmd.SetOut(io.Discard)
	if err := cmd.Execute(); err == nil {
		t.Error("garbage hashed without an error")
	}
}

// A worker configured with no credentials makes one admin key, in the store
// and in a file only its owner can read, once.
func TestBootstrapKeyIsCreatedOncePrivately(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Storage.DataDir = filepath.Join(t.TempDir(), "data")
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.DiscardHandler)
	key, legacy, file, err := bootstrapKey(ctx, cfg, store, log)
	if err != nil || legacy != "" {
		t.Fatalf("bootstrapKey = %q, legacy %q, %v", key, legacy, err)
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v, mode %v; want 0600", file, err, info.Mode().Perm())
	}
	id, _, ok := audit.ParseAPIKey(key)
	stored, err := store.GetAPIKey(ctx, id)
	if !ok || err != nil || stored.Role != audit.RoleAdmin || !stored.Principal().AllOrgs() {
		t.Fatalf("stored key %+v, %v: want an admin key for every organisation", stored, err)
	}
	again, _, _, err := bootstrapKey(ctx, cfg, store, log)
	if err != nil || again != key {
		t.Errorf("second start: %q, %v; want the same key", again, err)
	}
	cfg.HTTP.APIKeys = []string{"configured-key-0123456789"}
	if k, _, f, _ := bootstrapKey(ctx, cfg, store, log); k != "" || f != "" {
		t.Errorf("with configured keys no key is made: %q %q", k, f)
	}
}

// A key file from before keys were kept in the store keeps its admin rights.
func TestLegacyKeyFileStaysAdmin(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Storage.DataDir = t.TempDir()
	legacyKey := "awk_" + strings.Repeat("Zz9-", 11)
	if err := os.WriteFile(filepath.Join(cfg.Storage.DataDir, "api-key"), []byte(legacyKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, legacy, _, err := bootstrapKey(ctx, cfg, store, slog.New(slog.DiscardHandler))
	if err != nil || key != legacyKey || legacy != legacyKey {
		t.Fatalf("bootstrapKey = %q, legacy %q, %v", key, legacy, err)
	}
	auth := access.NewAuthenticator(access.Options{Keys: store})
	auth.SetStaticKeys(staticKeys(cfg, legacy))
	if p, err := auth.Authenticate(ctx, legacyKey); err != nil || p.Role != audit.RoleAdmin {
		t.Errorf("legacy key: %+v, %v", p, err)
	}
}

// With Redis configured the worker consumes the BullMQ queue into the store and
// dead-letters what it refuses.
func TestWorkerConsumesQueue(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	cfg := config.Default()
	cfg.Storage.DataDir = t.TempDir()
	cfg.HTTP.Address = "127.0.0.1:0"
	cfg.EnhancedClient.ConnectionString = testenv.PostgresDatabase(t)
	cfg.Redis.URL = redisURL
	cfg.Redis.KeyPrefix = testenv.RedisKeyPrefix(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := startWorker(ctx, loadedConfig{cfg: cfg}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb, _ := newRedisClient(cfg)
	defer rdb.Close()
	defer func() {
		if keys, _ := rdb.Keys(context.Background(), cfg.Redis.KeyPrefix+"*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	}()
	main, dead := queues(rdb, cfg)
	g := eventgen.New(9)
	invalid, _ := g.Invalid()
	opts := bullmq.JobOptions{Attempts: 1, RemoveOnComplete: bullmq.KeepLast(100), RemoveOnFail: bullmq.KeepAll()}
	if _, err := main.AddBulk(ctx, []bullmq.NewJob{
		{Name: main.Name(), Data: g.Valid(), Opts: opts}, {Name: main.Name(), Data: invalid, Opts: opts},
	}); err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyNil(t, 15*time.Second, func() error {
		counts, _ := main.Counts(ctx)
		deadCounts, _ := dead.Counts(ctx)
		if counts[bullmq.StateCompleted] == 1 && counts[bullmq.StateFailed] == 1 && deadCounts[bullmq.StateWaiting] == 1 {
			return nil
		}
		return fmt.Errorf("queue counts %v, dead-letter counts %v; want 1 completed, 1 failed, 1 dead letter", counts, deadCounts)
	})
	if st := w.proc.Stats(); st.Stored != 1 || st.RejectedValidation != 1 {
		t.Errorf("stats = %+v", st)
	}
	if err := w.shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// The worker on each store: start, ingest over HTTP, shut down gracefully.
func TestWorkerIngestsAndShutsDown(t *testing.T) {
	// setup gets the subtest's t: a store that is not there skips its subtest only.
	stores := map[string]func(*testing.T, *config.Config){
		"sqlite":   func(*testing.T, *config.Config) {},
		"postgres": func(t *testing.T, c *config.Config) { c.EnhancedClient.ConnectionString = testenv.PostgresDatabase(t) },
	}
	for name, setup := range stores {
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Storage.DataDir = t.TempDir()
			cfg.HTTP.Address = "127.0.0.1:0"
			setup(t, &cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := startWorker(ctx, loadedConfig{cfg: cfg}, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, w.URL()+"/v1/events", bytes.NewReader(eventgen.New(5).Valid()))
			req.Header.Set("Authorization", "Bearer "+w.bootKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Stored int }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || body.Stored != 1 {
				t.Fatalf("ingest: %s, %+v", resp.Status, body)
			}
			if err := w.shutdown(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := http.Get(w.URL() + "/healthz"); err == nil {
				t.Error("still serving after shutdown")
			}
		})
	}
}

// The worker sets its own garbage collector target only when the operator
// has not: GOGC, even empty or "off", is theirs.
func TestGCTargetLeavesGOGCToTheOperator(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	if got := gcTarget(env(nil)); got != defaultGCPercent {
		t.Errorf("GOGC unset: target %d, want %d", got, defaultGCPercent)
	}
	for _, v := range []string{"100", "off", ""} {
		if got := gcTarget(env(map[string]string{"GOGC": v})); got != -1 {
			t.Errorf("GOGC=%q: target %d, want -1 (left to the runtime)", v, got)
		}
	}
}

// fullWorker starts a worker with every part that runs goroutines: a watched
// configuration file, PostgreSQL (partition maintenance), Redis (the queue
// consumer and queue sampling), the detectors and the system monitor.
func fullWorker(t *testing.T, ctx context.Context) *worker {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "cache.json"))
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisKeyPrefix(t)
	t.Cleanup(func() { deleteKeys(t, redisURL, prefix) })
	doc, _ := json.Marshal(map[string]any{
		"enhancedClient": map[string]any{"connectionString": testenv.PostgresDatabase(t)},
		"redis":          map[string]any{"url": redisURL, "keyPrefix": prefix},
		"storage":        map[string]any{"dataDir": filepath.Join(dir, "data")},
		"http":           map[string]any{"address": "127.0.0.1:0"},
		"monitoring":     map[string]any{"healthCheckInterval": 5000},
		"observability":  map[string]any{"metrics": map[string]any{"collectionInterval": 1000}},
	})
	path := filepath.Join(dir, "worker.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	lc, err := loadConfig(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := startWorker(ctx, lc, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.reload == nil || w.queue == nil || w.mon.patterns == nil || w.obs.metrics == nil {
		t.Fatal("a part of the worker did not start; the test would not cover it")
	}
	return w
}

// shutdown returns only once every goroutine the worker started has ended,
// even while the context the worker was started with is still live.
func TestShutdownWaitsForEveryGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := fullWorker(t, ctx)
	if err := w.shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}

// A part of the worker that dies stops the whole worker with its error,
// instead of leaving it running without that part.
func TestFailedComponentStopsTheWorker(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(w *worker)
		want string
	}{
		{"HTTP server", func(w *worker) { w.listener.Close() }, "HTTP server stopped"},
		{"a loop that fails", func(w *worker) {
			w.spawn("test loop", func() error { return errors.New("lost its connection") })
		}, "test loop stopped: lost its connection"},
		{"a loop that returns early", func(w *worker) {
			w.spawn("test loop", func() error { return nil })
		}, "test loop stopped: returned while the worker was running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Storage.DataDir = t.TempDir()
			cfg.HTTP.Address = "127.0.0.1:0"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := startWorker(ctx, loadedConfig{cfg: cfg}, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.kill(w)
			done := make(chan error, 1)
			go func() { done <- w.run(ctx) }() // ctx stays live: only the failure can stop it
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("run returned %v, want an error with %q", err, tc.want)
				}
				if audit.ErrorCode(err) != audit.CodeUnavailable {
					t.Errorf("error code %q, want %q", audit.ErrorCode(err), audit.CodeUnavailable)
				}
			case <-time.After(15 * time.Second):
				cancel()
				<-done
				t.Fatal("the worker kept running after a component failed")
			}
		})
	}
}

// The CLI exits with an error when the worker stops because a part failed.
func TestRunExitsWithTheFailure(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "cache.json"))
	// The address is taken: the worker cannot serve, so it must not run.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := filepath.Join(dir, "worker.json")
	doc := fmt.Sprintf(`{"storage":{"dataDir":%q},"http":{"address":%q}}`, filepath.Join(dir, "data"), l.Addr().String())
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, log, err := runCommand(ctx, "--config", path, "run")
	if err == nil || !strings.Contains(err.Error(), "listen on") || !strings.Contains(log, "did not start") {
		t.Fatalf("run: %v\n%s", err, log)
	}
}
