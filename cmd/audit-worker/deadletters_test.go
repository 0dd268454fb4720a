package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
)

func gauge(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func TestDeadLetterLimitsFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(`{"storage":{"deadLetters":{"maxEntries":10,"maxBytes":2048,"retentionDays":7}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := audit.DeadLetterLimits{MaxEntries: 10, MaxBytes: 2048, Retention: 7 * 24 * time.Hour}
	if got := deadLetterLimits(cfg); got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
	if got := deadLetterLimits(config.Default()); got != (audit.DeadLetterLimits{MaxEntries: 100000, MaxBytes: 256 << 20, Retention: 30 * 24 * time.Hour}) {
		t.Errorf("default limits %+v", got)
	}
}

// A pass prunes beyond the quota, says so in a warning, counts what it
// pruned and sets the gauges to what is left; the loop runs a pass at start
// and stops when asked.
func TestDeadLetterPruner(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range 5 {
		_, err := store.StoreBatch(ctx, audit.Batch{DeadLetters: []audit.DeadLetter{{
			IdempotencyKey: fmt.Sprintf("dl:%d", i), Source: "http", Reason: audit.ReasonValidation,
			Message: "invalid event", Payload: bytes.Repeat([]byte("x"), 100), ReceivedAt: time.Now(),
		}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
	cfg := config.Default()
	cfg.Storage.DeadLetters = config.DeadLetters{MaxEntries: 3}

	p := newDeadLetterPruner(cfg, store, metrics, log)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- p.run(runCtx, deadLetterPruneInterval) }()
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, metrics.Registry(), "audit_dead_letters", "") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no pass within 10 s; log: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v when its context ended", err)
	}
	reg := metrics.Registry()
	if got := gauge(t, reg, "audit_dead_letters_bytes", ""); got != 300 {
		t.Errorf("dead-letter bytes %g, want 300", got)
	}
	if got := gauge(t, reg, "audit_dead_letters_pruned_total", "quota"); got != 2 {
		t.Errorf("pruned by quota %g, want 2", got)
	}
	if got := gauge(t, reg, "audit_dead_letters_pruned_total", "retention"); got != 0 {
		t.Errorf("pruned by retention %g, want 0", got)
	}
	if line := logs.String(); !strings.Contains(line, "level=WARN") || !strings.Contains(line, `msg="dead letters pruned" byQuota=2 byRetention=0 left=3`) {
		t.Errorf("log %q, want a warning with what was pruned", line)
	}

	// Nothing left to prune: no warning.
	logs.Reset()
	p.prune(ctx)
	if logs.Len() != 0 {
		t.Errorf("a pass that pruned nothing logged %q", logs.String())
	}
}
