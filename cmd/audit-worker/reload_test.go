package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, url, key string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// A running worker applies a changed file: reloadable settings at once, others
// reported as pending restart; an invalid version is refused and the last good
// one stays in force.
func TestConfigFileReload(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "cache.json"))
	path := filepath.Join(dir, "worker.json")
	base := `{"storage":{"dataDir":%q},"http":{"address":"127.0.0.1:0","keys":[{"name":"ops","key":"first-key-0123456789","role":"operator","organizations":["*"]}]},
		"logging":{"level":"info"},"worker":{"port":3001}}`
	replaceFile(t, path, strings.Replace(base, "%q", `"`+filepath.Join(dir, "data")+`"`, 1))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lc, err := loadConfig(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	_, level, err := newLogger(lc.cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w, err := startWorker(ctx, lc, slog.New(slog.DiscardHandler), level)
	if err != nil {
		t.Fatal(err)
	}
	defer w.shutdown(5 * time.Second)

	changed := strings.Replace(base, "%q", `"`+filepath.Join(dir, "data")+`"`, 1)
	changed = strings.Replace(changed, `"first-key-0123456789"`, `"second-key-0123456789"`, 1)
	changed = strings.Replace(changed, `"level":"info"`, `"level":"debug"`, 1)
	changed = strings.Replace(changed, `"port":3001`, `"port":3002`, 1)
	replaceFile(t, path, changed)

	testenv.Eventually(t, 10*time.Second, "the debug log level", func() bool { return level.Level() == slog.LevelDebug })
	code, status := getJSON(t, w.URL()+"/observability/config", "second-key-0123456789")
	if code != http.StatusOK {
		t.Fatalf("new API key refused after reload: %d", code)
	}
	if code, _ := getJSON(t, w.URL()+"/observability/config", "first-key-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("old API key still accepted: %d", code)
	}
	if p, _ := status["pendingRestart"].([]any); len(p) != 1 || p[0] != "worker.port" {
		t.Errorf("pendingRestart = %v, want [worker.port]", status["pendingRestart"])
	}

	replaceFile(t, path, `{"worker":{"port":70000}}`) // invalid: refused, the last good one stays
	testenv.EventuallyNil(t, 10*time.Second, func() error {
		if _, health := getJSON(t, w.URL()+"/healthz", ""); health["status"] != "WARNING" {
			return fmt.Errorf("invalid version not reported by /healthz: %v", health)
		}
		return nil
	})
	if level.Level() != slog.LevelDebug {
		t.Error("the refused version changed the running configuration")
	}
	_, status = getJSON(t, w.URL()+"/observability/config", "second-key-0123456789")
	if msg, _ := status["lastError"].(string); !strings.Contains(msg, "worker.port") {
		t.Errorf("lastError = %q, want the broken field", msg)
	}
}
