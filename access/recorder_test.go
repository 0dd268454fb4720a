package access_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/pipeline"
)

func TestRecorderStoresAccessesAsEvents(t *testing.T) {
	store := openKeys(t)
	proc := pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules()})
	batcher := pipeline.NewBatcher(proc, pipeline.BatcherConfig{})
	t.Cleanup(func() { batcher.Close(context.Background()) })
	rec := access.NewRecorder(access.RecorderOptions{Pipeline: batcher, MaxWait: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rec.Run(ctx) }()

	auditor := audit.Principal{ID: "key:abcdefghijklmnop", Role: audit.RoleAuditor, Organizations: []string{"org-a", "org-b"}}
	rec.Record(access.Access{Action: access.ActionQuery, Principal: auditor, Organizations: []string{"org-a", "org-b"},
		Success: true, Outcome: "12 events", TargetType: "audit_event",
		Details: map[string]any{"route": "GET /v1/events", "filters": map[string]any{"action": "auth.*"}, "resultCount": 12}})
	rec.Record(access.Access{Action: access.ActionDenied, PrincipalID: "anonymous", Outcome: "unauthorized: no valid credentials",
		Details: map[string]any{"route": "GET /v1/keys", "httpStatus": 401}})
	cancel() // Run stores what is queued before it returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	events, err := store.ListEvents(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || rec.Recorded() != 3 || rec.Lost() != 0 {
		t.Fatalf("stored %d events, recorded %d, lost %d; want 3, 3, 0", len(events), rec.Recorded(), rec.Lost())
	}
	orgs := map[string]bool{}
	for _, e := range events[:2] {
		orgs[e.OrganizationID] = true
		if e.Action != access.ActionQuery || e.PrincipalID != auditor.ID || e.Status != audit.StatusSuccess || e.Source != "access" {
			t.Errorf("query record = %s %s %s %s", e.Action, e.PrincipalID, e.Status, e.Source)
		}
		var d map[string]any
		if err := json.Unmarshal(e.Details, &d); err != nil || d["route"] != "GET /v1/events" || d["resultCount"] != float64(12) || d["role"] != "auditor" {
			t.Errorf("details = %s (%v)", e.Details, err)
		}
	}
	if !orgs["org-a"] || !orgs["org-b"] {
		t.Errorf("one record per organisation read: got %v", orgs)
	}
	denied := events[2]
	if denied.Action != access.ActionDenied || denied.Status != audit.StatusFailure || denied.PrincipalID != "anonymous" || denied.OrganizationID != "" {
		t.Errorf("denied record = %+v", denied.Event)
	}
}

// blockedPipeline never answers until released: the recorder's buffer fills.
type blockedPipeline struct{ release chan struct{} }

func (b blockedPipeline) Submit(ctx context.Context, in []pipeline.Input) ([]pipeline.Outcome, error) {
	<-b.release
	return make([]pipeline.Outcome, len(in)), nil
}

func TestRecorderNeverBlocksAndCountsLoss(t *testing.T) {
	release := make(chan struct{})
	lostSeen := 0
	rec := access.NewRecorder(access.RecorderOptions{Pipeline: blockedPipeline{release}, Buffer: 4, MaxBatch: 1,
		OnLost: func(n int) { lostSeen += n }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rec.Run(ctx) }()
	start := time.Now()
	for range 100 {
		rec.Record(access.Access{Action: access.ActionQuery, PrincipalID: "p", Success: true})
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Record blocked for %s", took)
	}
	if rec.Lost() < 90 || int64(lostSeen) != rec.Lost() {
		t.Fatalf("lost %d (callback %d), want at least 90 of 100 with a buffer of 4", rec.Lost(), lostSeen)
	}
	close(release)
	cancel()
	<-done
}
