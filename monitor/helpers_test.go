package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
)

// fakeAlerts dedups like a real store: a condition whose DedupKey has an open
// alert last seen within its DedupWindow updates that alert.
type fakeAlerts struct {
	mu     sync.Mutex
	raised []audit.AlertCondition
	alerts map[string]*audit.Alert
	fail   error
}

func newFakeAlerts() *fakeAlerts { return &fakeAlerts{alerts: make(map[string]*audit.Alert)} }

func (f *fakeAlerts) RaiseAlert(_ context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return audit.AlertRaise{}, f.fail
	}
	f.raised = append(f.raised, c)
	if a, ok := f.alerts[c.DedupKey]; ok && a.Status.Open() && c.ObservedAt.Sub(a.LastSeen) <= c.DedupWindow {
		a.Occurrences += max(c.Occurrences, 1)
		a.LastSeen = c.ObservedAt
		a.Metadata = c.Metadata
		return audit.AlertRaise{Alert: *a}, nil
	}
	a := &audit.Alert{ID: fmt.Sprintf("alert-%d", len(f.alerts)+1), DedupKey: c.DedupKey, Status: audit.AlertActive,
		Severity: c.Severity, Type: c.Type, Occurrences: max(c.Occurrences, 1), FirstSeen: c.ObservedAt, LastSeen: c.ObservedAt, Metadata: c.Metadata}
	f.alerts[c.DedupKey] = a
	return audit.AlertRaise{Alert: *a, Created: true}, nil
}

func (f *fakeAlerts) GetAlert(context.Context, string) (audit.Alert, error) {
	return audit.Alert{}, errors.New("not implemented")
}
func (f *fakeAlerts) ListAlerts(context.Context, audit.AlertFilter) ([]audit.Alert, string, error) {
	return nil, "", errors.New("not implemented")
}
func (f *fakeAlerts) TransitionAlert(context.Context, string, audit.AlertStatus, string, string) (audit.Alert, error) {
	return audit.Alert{}, errors.New("not implemented")
}
func (f *fakeAlerts) AlertStatistics(context.Context, audit.AlertFilter) (audit.AlertStatistics, error) {
	return audit.AlertStatistics{}, errors.New("not implemented")
}

// conditions returns a copy of everything raised so far.
func (f *fakeAlerts) conditions() []audit.AlertCondition {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]audit.AlertCondition(nil), f.raised...)
}

func (f *fakeAlerts) occurrences(key string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.alerts[key]; ok {
		return a.Occurrences
	}
	return 0
}

type fakeNotifier struct {
	mu  sync.Mutex
	got []audit.Alert
}

func (n *fakeNotifier) Notify(_ context.Context, a audit.Alert) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, a)
}

// backend makes fresh States of one kind; shared returns States that see the
// same windows (as two worker processes would).
type backend struct {
	name   string
	shared func(t *testing.T) (State, State)
}

func backends() []backend {
	return []backend{
		{"memory", func(*testing.T) (State, State) { s := NewMemoryState(); return s, s }},
		{"redis", func(t *testing.T) (State, State) { return sharedRedis(t) }},
	}
}

// sharedRedis returns two RedisStates on one log, with two clients (as two
// worker processes would have).
func sharedRedis(t testing.TB) (*RedisState, *RedisState) {
	rdb := testRedis(t)
	prefix := testenv.RedisKeyPrefix(t) + ":"
	a, err := NewRedisState(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedisState(testRedis(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKeys(t, rdb, a.base+"*") })
	return a, b
}

func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func deleteKeys(t testing.TB, rdb *redis.Client, pattern string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, pattern, 100).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleanup %s: %v", pattern, err)
	}
}

// forEachBackend runs a behaviour on both States.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// harness is a Monitor on a test clock with a fake alert store.
type harness struct {
	*Monitor
	alerts *fakeAlerts
	clock  *testenv.Clock
	reg    *prometheus.Registry
	notes  *fakeNotifier
}

var t0 = time.Date(2024, 3, 5, 14, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, st State, cfg Config) *harness {
	t.Helper()
	h := &harness{alerts: newFakeAlerts(), clock: testenv.NewClock(t0), reg: prometheus.NewRegistry(), notes: &fakeNotifier{}}
	m, err := New(cfg, Options{State: st, Alerts: h.alerts, Notifier: h.notes, Registerer: h.reg, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.Monitor = m
	return h
}

// ev describes a test event; key is its idempotency key.
type ev struct {
	key, action, principal, org, ip, outcome, details string
	status                                            audit.Status
	at                                                time.Time
}

func (e ev) accepted() pipeline.AcceptedEvent {
	event := &audit.Event{
		Timestamp: e.at.Format(time.RFC3339Nano), Time: e.at,
		Action: e.action, Status: e.status, PrincipalID: e.principal, OrganizationID: e.org,
		OutcomeDescription: e.outcome, CorrelationID: "corr-" + e.key,
	}
	if event.OrganizationID == "" {
		event.OrganizationID = "org-1"
	}
	if e.ip != "" {
		event.SessionContext = &audit.SessionContext{IPAddress: e.ip}
	}
	if e.details != "" {
		event.Details = json.RawMessage(e.details)
	}
	return pipeline.AcceptedEvent{Key: e.key, Event: event, Stored: true}
}

// feed runs one batch of events through the monitor.
func (h *harness) feed(events ...ev) {
	r := &pipeline.BatchReport{CommittedAt: h.clock.Now()}
	for i, e := range events {
		a := e.accepted()
		a.Input = i
		r.Accepted = append(r.Accepted, a)
	}
	h.ObserveBatch(context.Background(), r)
}

// failedLogin is a failed login of principal at t.
func failedLogin(key, principal string, at time.Time) ev {
	return ev{key: key, action: "auth.login.failure", status: audit.StatusFailure, principal: principal, at: at}
}

func keysOf(conds []audit.AlertCondition) []string {
	var out []string
	for _, c := range conds {
		out = append(out, c.DedupKey)
	}
	return out
}

func metadata(t *testing.T, c audit.AlertCondition) evidence {
	t.Helper()
	var e evidence
	if err := json.Unmarshal(c.Metadata, &e); err != nil {
		t.Fatalf("metadata %s: %v", c.Metadata, err)
	}
	return e
}

// redisAt is a client for an address where nothing listens. A refused
// connection is an answer: the client neither retries the command nor the dial.
func redisAt(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
