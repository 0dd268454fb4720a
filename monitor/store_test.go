package monitor

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/sqlite"
)

// TestRaisesIntoRealStore checks that the conditions are ones a real alert
// store accepts, and that a burst becomes one alert with growing occurrences.
func TestRaisesIntoRealStore(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	h := newHarness(t, NewMemoryState(), DefaultConfig())
	m, err := New(DefaultConfig(), Options{State: NewMemoryState(), Alerts: store, Now: h.clock.Now, Notifier: h.notes})
	if err != nil {
		t.Fatal(err)
	}
	h.Monitor = m
	for i := range 7 {
		h.feed(failedLogin(fmt.Sprintf("k%d", i), "u-42", t0.Add(time.Duration(i)*time.Second)))
	}
	h.feed(ev{key: "night", action: "data.read", status: audit.StatusSuccess, principal: "u-1",
		at: time.Date(2024, 3, 5, 23, 0, 0, 0, time.UTC)})
	alerts, _, err := store.ListAlerts(ctx, audit.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, a := range alerts {
		got[a.DedupKey] = a.Occurrences
		if a.Source != SourcePatternDetector || a.Type != audit.AlertSecurity {
			t.Errorf("alert %+v", a)
		}
	}
	if len(alerts) != 2 || got["FAILED_AUTH:principal:u-42"] != 3 || got["OFF_HOURS:principal:u-1"] != 1 {
		t.Fatalf("stored %v, want FAILED_AUTH with 3 occurrences and one OFF_HOURS", got)
	}
	if len(h.notes.got) != 2 {
		t.Errorf("notified %d times, want 2 (the created alerts)", len(h.notes.got))
	}
}
