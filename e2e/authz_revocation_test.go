package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// authzAdminKey is the configured admin key of the revocation test's workers.
const authzAdminKey = "e2e-authz-admin-key-0123456789"

// revocationBound is how soon every worker must refuse a revoked key: each
// trusts a stored key it has read for 2 s.
const revocationBound = 5 * time.Second

// authzWorkers is two worker processes on one PostgreSQL database, without
// Redis, sharing one configuration but for their data directories.
type authzWorkers struct {
	t            *testing.T
	bin, dir     string
	cfgA, cfgB   string
	urlA, urlB   string
	logA, logB   string
	procA, procB *proc
}

func startAuthzWorkers(t *testing.T) *authzWorkers {
	t.Helper()
	root := moduleRoot(t)
	pgURL := testenv.PostgresDatabase(t)
	w := &authzWorkers{t: t, bin: workerBinary(t, root), dir: t.TempDir()}
	w.cfgA, w.cfgB = w.writeConfig("a", pgURL), w.writeConfig("b", pgURL)
	w.logA, w.logB = filepath.Join(w.dir, "a.log"), filepath.Join(w.dir, "b.log")
	dumpLogOnFailure(t, w.logA)
	dumpLogOnFailure(t, w.logB)
	w.procA, w.urlA = w.start(w.cfgA, w.logA)
	w.procB, w.urlB = w.start(w.cfgB, w.logB)
	return w
}

func (w *authzWorkers) writeConfig(name, pgURL string) string {
	w.t.Helper()
	doc := map[string]any{
		"enhancedClient": map[string]any{"connectionString": pgURL, "maxConnections": 4},
		"http": map[string]any{"address": "127.0.0.1:0", "keys": []map[string]any{
			{"name": "e2e-admin", "key": authzAdminKey, "role": "admin", "organizations": []string{"*"}}}},
		"storage": map[string]any{"dataDir": filepath.Join(w.dir, name)},
		"logging": map[string]any{"format": "json", "level": "info"},
	}
	data, _ := json.Marshal(doc)
	path := filepath.Join(w.dir, name+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// command runs the binary with the test's configuration cache.
func (w *authzWorkers) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.bin, args...)
	cmd.Env = append(os.Environ(), "AUDIT_CONFIG_CACHE="+filepath.Join(w.dir, "config-cache.json"), "LOG_LEVEL=")
	return cmd
}

// start runs a worker and waits until it serves; it returns its base URL.
func (w *authzWorkers) start(cfg, logPath string) (*proc, string) {
	w.t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	cmd := w.command(context.Background(), "--config", cfg)
	cmd.Stdout, cmd.Stderr = f, f
	p := &proc{cmd: cmd, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	w.t.Cleanup(func() { p.stop(w.t, 15*time.Second) })
	if !testenv.Until(workerStartMax, func() bool { return logContains(logPath, 0, "audit worker started") || p.exited() }) || p.exited() {
		w.t.Fatalf("worker did not start: %v\n%s", p.err, tail(logPath, 40))
	}
	return p, workerURL(w.t, logPath)
}

// cli runs an operator command and returns its standard output.
func (w *authzWorkers) cli(args ...string) []byte {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := w.command(ctx, append([]string{"--config", w.cfgA}, args...)...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("audit-worker %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// limitedBuffer keeps what a command writes to stderr, for an error message.
type limitedBuffer struct{ data []byte }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(b.data) < 64<<10 {
		b.data = append(b.data, p...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return string(b.data) }

// createKey makes an org-a reader key with the CLI.
func (w *authzWorkers) createKey(name string) (id, key string) {
	w.t.Helper()
	var made struct{ ID, Key string }
	out := w.cli("keys", "create", "--name", name, "--role", "reader", "--org", "org-a", "--output", "json")
	if err := json.Unmarshal(out, &made); err != nil || made.Key == "" {
		w.t.Fatalf("keys create printed %q: %v", out, err)
	}
	return made.ID, made.Key
}

// authzStatus makes a request with a bearer key and returns its status.
func authzStatus(method, url, key string) (int, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// untilRefused polls GET /v1/events on baseURL with key every 100 ms until
// it answers 401, and returns how long that took from since.
func untilRefused(baseURL, key string, since time.Time) (time.Duration, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		code, err := authzStatus("GET", baseURL+"/v1/events?organizationId=org-a", key)
		switch {
		case err != nil:
			return 0, err
		case code == http.StatusUnauthorized:
			return time.Since(since), nil
		case code != http.StatusOK:
			return 0, fmt.Errorf("while waiting for the revocation: %d", code)
		case time.Since(since) > 3*revocationBound:
			return 0, fmt.Errorf("the revoked key still works %s after its revocation", time.Since(since))
		}
		<-tick.C
	}
}

// A key made with the CLI works on workers A and B; revoked through worker
// A's API (DELETE /v1/keys/{id}), or with the CLI, it is refused by B within
// 5 s, and by A at once when A revoked it. Both are polled every 100 ms from
// the moment the revocation returned, and the times are logged.
func TestRevocationReachesAnotherWorker(t *testing.T) {
	w := startAuthzWorkers(t)
	for _, how := range []string{"worker A's API", "the CLI"} {
		id, key := w.createKey("revoked through " + how)
		for _, url := range []string{w.urlA, w.urlB} {
			if code, err := authzStatus("GET", url+"/v1/events?organizationId=org-a", key); err != nil || code != http.StatusOK {
				t.Fatalf("the new key on %s: %d (%v), want 200", url, code, err)
			}
		}
		asked := time.Now()
		if how == "the CLI" {
			w.cli("keys", "revoke", id)
		} else if code, err := authzStatus("DELETE", w.urlA+"/v1/keys/"+id, authzAdminKey); err != nil || code != http.StatusOK {
			t.Fatalf("DELETE /v1/keys/%s on A: %d (%v)", id, code, err)
		}
		revoked := time.Now()
		var onA, onB time.Duration
		var errA, errB error
		var wg sync.WaitGroup
		wg.Go(func() { onA, errA = untilRefused(w.urlA, key, revoked) })
		wg.Go(func() { onB, errB = untilRefused(w.urlB, key, revoked) })
		wg.Wait()
		if err := errors.Join(errA, errB); err != nil {
			t.Fatalf("revoked through %s: %v", how, err)
		}
		t.Logf("revoked through %s (the call took %s): worker B (pid %d) refused the key %s after the revocation returned, worker A (pid %d) %s",
			how, revoked.Sub(asked).Round(time.Millisecond), w.procB.pid(), onB.Round(time.Millisecond), w.procA.pid(), onA.Round(time.Millisecond))
		if onB > revocationBound {
			t.Errorf("worker B took %s to refuse the key revoked through %s, want at most %s", onB, how, revocationBound)
		}
		if how == "worker A's API" && onA > 100*time.Millisecond {
			t.Errorf("worker A, which revoked the key, took %s to refuse it", onA)
		}
	}
}
