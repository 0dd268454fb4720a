package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/console"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/report"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
	"github.com/smartlogs/audit-worker/transparency"
)

// authzStore is everything the access-control tests need of a real store:
// both postgres.Store and sqlite.Store are one.
type authzStore interface {
	audit.EventStore
	audit.EventReader
	audit.KeyStore
	audit.ExportStore
	audit.SecretStore
	audit.AlertStore
	DeadLetterStore
	report.Store
	report.RunStore
	audit.TreeStore
}

// authzDB is a store with a second connection to its database, through which
// the tests count rows behind the API's back.
type authzDB struct {
	store authzStore
	count func(t *testing.T, query string) int64
}

// authzStoreKinds open each real store on an empty database.
var authzStoreKinds = []struct {
	name string
	open func(t *testing.T) authzDB
}{
	{"sqlite", func(t *testing.T) authzDB {
		path := filepath.Join(t.TempDir(), "audit.db")
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return authzDB{store: s, count: func(t *testing.T, query string) int64 {
			t.Helper()
			var n int64
			if err := db.QueryRow(query).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		}}
	}},
	{"postgres", func(t *testing.T) authzDB {
		url := testenv.PostgresDatabase(t)
		s, err := postgres.Open(context.Background(), postgres.Config{URL: url, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return authzDB{store: s, count: func(t *testing.T, query string) int64 {
			t.Helper()
			var n int64
			if err := pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		}}
	}},
}

// The organisations of the access-control tests: every principal below is
// scoped to org-a (scopeOrg), and org-b's (otherOrg) data must stay out of its reach.
const (
	scopeOrg = "org-a"
	otherOrg = "org-b"
)

// authzSeed is one organisation's data: ids to put in paths.
type authzSeed struct {
	event      int64
	alert      string
	deadLetter int64
	export     string
	key        string // a reader key of the organisation
}

// authzFixture is a Server over a real store holding the events, alerts,
// dead letters, exports and keys of org-a and org-b, with one stored key per
// role scoped to org-a.
type authzFixture struct {
	db      authzDB
	srv     *Server
	proc    *pipeline.Processor
	gen     *eventgen.Generator
	records *access.Recorder // nil unless asked for
	// stopRecords stops the recorder once it has stored what it holds.
	stopRecords func()
	log         *lockedLog

	tokens  map[audit.Role]string // org-a keys, by role
	keyIDs  map[audit.Role]string
	revoked string // an org-a admin key, revoked
	expired string // an org-a admin key, expired
	admin   string // an admin key for every organisation
	seeds   map[string]authzSeed
}

// authzOptions change what a fixture is built with.
type authzOptions struct {
	limits  *access.Limiter // nil: no limits
	records bool            // store access records through the pipeline
}

// lockedLog keeps a server's log lines for the test to read.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// authzConfig reports a healthy configuration for /observability/config.
type authzConfig struct{}

func (authzConfig) ConfigStatus() any            { return map[string]any{"source": "test"} }
func (authzConfig) ConfigHealth() (bool, string) { return true, "" }

func newAuthzFixture(t *testing.T, db authzDB, o authzOptions) *authzFixture {
	t.Helper()
	f := &authzFixture{db: db, gen: eventgen.New(2026), log: &lockedLog{},
		tokens: map[audit.Role]string{}, keyIDs: map[audit.Role]string{}, seeds: map[string]authzSeed{}}
	f.proc = pipeline.NewProcessor(db.store, pipeline.Config{Rules: audit.DefaultRules()})
	batcher := pipeline.NewBatcher(f.proc, pipeline.BatcherConfig{MaxSize: 500, MaxWait: 2 * time.Millisecond})
	t.Cleanup(func() { batcher.Close(context.Background()) })
	if o.records {
		f.records = access.NewRecorder(access.RecorderOptions{Pipeline: batcher, MaxWait: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.records.Run(ctx)
		}()
		var once sync.Once
		f.stopRecords = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(f.stopRecords)
	}
	f.seedKeys(t)
	auth := access.NewAuthenticator(access.Options{Keys: db.store})
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
	dash := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: metrics})
	f.srv = New(Options{
		Ingester: batcher, Store: db.store, Auth: auth, Limits: o.limits, Keys: db.store,
		DeadLetters: db.store, Records: f.records, MaxBodyBytes: 1 << 20, Config: authzConfig{},
		Logger:  slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: MetricsOptions{Exposition: metrics.Handler(), Dashboard: dash, Bottlenecks: dash},
		Tracing: TracingOptions{Store: telemetry.NewSpanStore(100), EnablePprof: true},
		Alerts:  AlertOptions{Store: db.store},
		Events:  EventOptions{Reader: db.store, Exports: db.store, Secrets: db.store},
		Reports: ReportOptions{Generator: report.New(report.Options{Store: db.store}), Runs: db.store},
		Console: ConsoleOptions{Assets: console.Handler(), StreamInterval: 50 * time.Millisecond},
		Proofs:  ProofOptions{Tree: db.store, VerifierKey: authzTreeKey.VerifierKey},
	})
	t.Cleanup(f.srv.Close)
	for _, org := range []string{scopeOrg, otherOrg} {
		f.seeds[org] = authzSeed{event: f.storeEvent(t, org), alert: f.raiseAlert(t, org),
			deadLetter: f.deadLetter(t, org), export: f.saveExport(t, org), key: f.newKey(t, org, audit.RoleReader)}
	}
	checkpointAll(t, db.store)
	return f
}

// seedKeys stores one org-a key per role, a revoked and an expired org-a admin
// key, and an admin key for every organisation.
func (f *authzFixture) seedKeys(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, role := range audit.Roles {
		k, token, err := access.CreateKey(ctx, f.db.store, access.NewKey{Name: "matrix " + string(role), Role: role,
			Organizations: []string{scopeOrg}, CreatedBy: "test"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[role], f.keyIDs[role] = token, k.ID
	}
	k, token, err := access.CreateKey(ctx, f.db.store, access.NewKey{Name: "revoked admin", Role: audit.RoleAdmin,
		Organizations: []string{scopeOrg}, CreatedBy: "test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.store.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.revoked = token
	id, token, hash := audit.NewAPIKeySecret()
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if err := f.db.store.CreateAPIKey(ctx, audit.APIKey{ID: id, Name: "expired admin", Role: audit.RoleAdmin,
		Organizations: []string{scopeOrg}, CreatedBy: "test", CreatedAt: past.Add(-time.Hour), ExpiresAt: &past,
		SecretHash: hash}); err != nil {
		t.Fatal(err)
	}
	f.expired = token
	_, f.admin, err = access.CreateKey(ctx, f.db.store, access.NewKey{Name: "global admin", Role: audit.RoleAdmin,
		Organizations: []string{audit.AllOrganizations}, CreatedBy: "test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
}

// eventOf returns a valid, hashed event of org ("" for none).
func (f *authzFixture) eventOf(org string) []byte {
	fields := f.gen.Fields()
	if org == "" {
		delete(fields, "organizationId")
	} else {
		fields["organizationId"] = org
	}
	return f.gen.Seal(fields)
}

func (f *authzFixture) storeEvent(t *testing.T, org string) int64 {
	t.Helper()
	out, err := f.proc.Process(context.Background(), []pipeline.Input{{Payload: f.eventOf(org), Source: "http", ReceivedAt: time.Now()}})
	if err != nil || out[0].Status != pipeline.StatusStored {
		t.Fatalf("store an event of %s: %+v, %v", org, out, err)
	}
	return out[0].Seq
}

// deadLetter refuses an invalid event of org and returns its dead letter's id.
func (f *authzFixture) deadLetter(t *testing.T, org string) int64 {
	t.Helper()
	fields := f.gen.Fields()
	fields["organizationId"], fields["status"] = org, "maybe"
	payload, _ := json.Marshal(fields)
	out, err := f.proc.Process(context.Background(), []pipeline.Input{{Payload: payload, Source: "http", ReceivedAt: time.Now()}})
	if err != nil || out[0].Status != pipeline.StatusRejected {
		t.Fatalf("wantRefusal an event of %s: %+v, %v", org, out, err)
	}
	for _, d := range f.allDeadLetters(t) {
		if d.IdempotencyKey == out[0].Key {
			return d.ID
		}
	}
	t.Fatalf("no dead letter for %s", out[0].Key)
	return 0
}

func (f *authzFixture) allDeadLetters(t *testing.T) []audit.StoredDeadLetter {
	t.Helper()
	var all []audit.StoredDeadLetter
	after := int64(0)
	for {
		page, err := f.db.store.ListDeadLetters(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 500 {
			return all
		}
		after = page[len(page)-1].ID
	}
}

func (f *authzFixture) raiseAlert(t *testing.T, org string) string {
	t.Helper()
	r, err := f.db.store.RaiseAlert(context.Background(), audit.AlertCondition{OrganizationID: org,
		Type: audit.AlertSecurity, Severity: audit.SeverityHigh, DedupKey: "authz-test:" + authzRandomHex(8),
		DedupWindow: time.Minute, Title: "test alert of " + org, Source: "authz-test", ObservedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return r.Alert.ID
}

func (f *authzFixture) saveExport(t *testing.T, org string) string {
	t.Helper()
	now := time.Now().UTC()
	m := audit.ExportManifest{ID: "exp_" + authzRandomHex(12), Format: "ndjson", Organizations: []string{org},
		Filters: map[string][]string{"organizationId": {org}}, Caller: "key:test", GeneratedAt: now,
		CompletedAt: now, Complete: true, SHA256: strings.Repeat("0", 64)}
	if err := f.db.store.SaveExport(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func (f *authzFixture) newKey(t *testing.T, org string, role audit.Role) string {
	t.Helper()
	k, _, err := access.CreateKey(context.Background(), f.db.store, access.NewKey{Name: "target of " + org,
		Role: role, Organizations: []string{org}, CreatedBy: "test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func authzRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// authzRequest is one request to the server.
type authzRequest struct {
	method, target, body string
	token                string // sent as a bearer credential when set
	remote               string // the client address; default 192.0.2.1:1234
	header               map[string]string
	// stream marks a route that answers until the client goes: the request
	// is ended after a moment, and what it answered by then is checked.
	stream bool
}

func (f *authzFixture) serve(rq authzRequest) *httptest.ResponseRecorder {
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req := httptest.NewRequest(rq.method, rq.target, body)
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.remote != "" {
		req.RemoteAddr = rq.remote
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	if rq.stream {
		ctx, cancel := context.WithTimeout(req.Context(), 300*time.Millisecond)
		defer cancel()
		req = req.WithContext(ctx)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

// decodeErrorBody decodes the {"error":{"code","message"}} answer of a refusal.
func decodeErrorBody(rec *httptest.ResponseRecorder) (code, message string, err error) {
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		return "", "", fmt.Errorf("not JSON: %v", err)
	}
	if e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		return "", "", fmt.Errorf("no error code and message")
	}
	return e.Error.Code, e.Error.Message, nil
}

// storeCounts are the rows of every table a request could change; access
// records (source "access") are counted apart.
type storeCounts struct {
	events, accessRecords, alerts, keys, deadLetters int64
}

func (f *authzFixture) counts(t *testing.T) storeCounts {
	t.Helper()
	return storeCounts{
		events:        f.db.count(t, "SELECT count(*) FROM audit_log WHERE source <> 'access'"),
		accessRecords: f.db.count(t, "SELECT count(*) FROM audit_log WHERE source = 'access'"),
		alerts:        f.db.count(t, "SELECT count(*) FROM alerts"),
		keys:          f.db.count(t, "SELECT count(*) FROM api_keys"),
		deadLetters:   f.db.count(t, "SELECT count(*) FROM audit_dead_letter"),
	}
}

// authzTreeKey signs the fixture's checkpoints.
var authzTreeKey = func() transparency.Key {
	skey, _, err := note.GenerateKey(rand.Reader, "audit.test/httpapi")
	if err != nil {
		panic(err)
	}
	k, err := transparency.ParseKey(skey)
	if err != nil {
		panic(err)
	}
	return k
}()

// checkpointAll integrates every stored row into the tree and signs a
// checkpoint of it, as the worker's integrator does within seconds.
func checkpointAll(t *testing.T, s audit.TreeStore) {
	t.Helper()
	in := transparency.NewIntegrator(s, transparency.Config{Origin: "audit.test/httpapi", Key: authzTreeKey})
	for {
		n, err := in.Integrate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if err := in.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
}
