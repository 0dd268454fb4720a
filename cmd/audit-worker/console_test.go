package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/console"
	"github.com/smartlogs/audit-worker/httpapi"
)

// The worker serves the console, a session opened with its own admin key
// watches the live overview, and a graceful shutdown does not wait for that
// stream: it is told to end.
func TestWorkerServesTheConsoleAndEndsItsStreamsOnShutdown(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.DataDir = t.TempDir()
	cfg.HTTP.Address = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := startWorker(ctx, loadedConfig{cfg: cfg}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(w.URL() + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != console.ContentSecurityPolicy ||
		!strings.Contains(string(page), `src="js/app.js"`) {
		t.Fatalf("GET /console/: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}

	resp, err = http.Post(w.URL()+"/console/session", "application/json", strings.NewReader(`{"credential":"`+w.bootKey+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != httpapi.SessionCookie {
		t.Fatalf("sign in with the worker's admin key: %d %v", resp.StatusCode, resp.Cookies())
	}
	req, _ := http.NewRequest("GET", w.URL()+"/v1/stream/overview", nil)
	req.AddCookie(resp.Cookies()[0])
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	lines := bufio.NewScanner(stream.Body)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	var events []string
	for len(events) < 2 && lines.Scan() {
		if ev, ok := strings.CutPrefix(lines.Text(), "event: "); ok {
			events = append(events, ev)
		}
	}
	if strings.Join(events, ",") != "overview,overview" {
		t.Fatalf("the stream sent %v", events)
	}

	began := time.Now()
	if err := w.shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("shutdown took %s with a console open", d)
	}
	for lines.Scan() {
		if ev, ok := strings.CutPrefix(lines.Text(), "event: "); ok {
			events = append(events, ev)
		}
	}
	if events[len(events)-1] != "end" {
		t.Errorf("the stream ended without saying why: %v", events)
	}
}
