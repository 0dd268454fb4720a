package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/console"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/report"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
	"github.com/smartlogs/audit-worker/transparency"
)

// Organisations of the test worker's data.
const (
	orgA = "org-a"
	orgB = "org-b"
)

// worker is a worker wired as cmd/audit-worker wires it (pipeline, metrics,
// dashboard, health, access control, access records, tamper evidence, the
// console), on a real SQLite store, serving HTTP on a local port.
type worker struct {
	t       *testing.T
	URL     string
	store   *sqlite.Store
	dbPath  string
	proc    *pipeline.Processor
	breaker *pipeline.Breaker
	api     *httpapi.Server
	hmacKey []byte
	gen     *eventgen.Generator
	keys    map[string]string // by role-org name, e.g. "operator", "reader-a"
	reports *report.Generator
	// checkpointKey signs the checkpoints; integrator integrates the stored
	// rows into the tree and signs them (in the background unless the
	// worker was made with manualIntegration).
	checkpointKey   transparency.Key
	integrator      *transparency.Integrator
	stopIntegration func() // ends the background integrator and waits for it
}

// checkpointOrigin is the test worker's checkpoint origin and key name.
const checkpointOrigin = "audit.test/console"

// workerOption changes how newWorker wires the worker.
type workerOption func(*workerOptions)

type workerOptions struct {
	manualIntegration bool
	noTamperEvidence  bool
	servedKey         string
}

// manualIntegration leaves integration to the test (worker.integrate):
// no row is in a checkpoint until it calls it.
func manualIntegration(o *workerOptions) { o.manualIntegration = true }

// noTamperEvidence wires the worker with security.checkpoint off: no
// integrator, and the proof routes answer 503.
func noTamperEvidence(o *workerOptions) { o.noTamperEvidence, o.manualIntegration = true, true }

// servingKey makes GET /v1/checkpoints/key serve vkey instead of the
// verifier key of the key that signs, as a worker configured with the
// wrong key would.
func servingKey(vkey string) workerOption {
	return func(o *workerOptions) { o.servedKey = vkey }
}

func newWorker(t *testing.T, opts ...workerOption) *worker {
	t.Helper()
	var o workerOptions
	for _, opt := range opts {
		opt(&o)
	}
	store, dbPath := teststores.SQLite(t)
	w := &worker{t: t, store: store, dbPath: dbPath, hmacKey: []byte("console-test-hmac-key-0123456789"), keys: map[string]string{}}
	w.gen = eventgen.New(21)
	w.gen.HMACKey = w.hmacKey
	w.gen.Start = time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Millisecond)

	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
	w.breaker = pipeline.NewBreaker(pipeline.BreakerConfig{OnChange: metrics.BreakerChanged})
	w.proc = pipeline.NewProcessor(store, w.pipelineConfig(w.hmacKey))
	w.proc.Instrument(pipeline.Instruments{Observers: []pipeline.Observer{metrics}})
	batcher := pipeline.NewBatcher(w.proc, pipeline.BatcherConfig{MaxSize: 1000, MaxWait: 2 * time.Millisecond})

	auth := access.NewAuthenticator(access.Options{Keys: store})
	records := access.NewRecorder(access.RecorderOptions{Pipeline: batcher, MaxWait: 20 * time.Millisecond})
	recCtx, stopRecords := context.WithCancel(context.Background())
	var recWG sync.WaitGroup
	recWG.Go(func() { _ = records.Run(recCtx) })

	checker := health.NewChecker(health.Options{})
	checker.Add("database", health.Database(store))
	checker.Add("circuit-breaker", health.CircuitBreaker(func() string { return string(w.breaker.State()) }))
	checker.Add("config", health.Config(fileConfig{}.ConfigHealth))
	dashboard := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: metrics, Breaker: w.breaker.State,
		Alerts: func(ctx context.Context) (audit.AlertStatistics, error) {
			return store.AlertStatistics(ctx, audit.AlertFilter{})
		}})
	w.reports = reportGenerator(config.Default(), store, w.hmacKey)

	// Tamper evidence as cmd/audit-worker wires it, with a key made here and
	// checkpoints published to a file of the test's; short intervals so
	// that a stored row is in a checkpoint well within a second.
	w.checkpointKey = newCheckpointKey(t, checkpointOrigin)
	w.integrator = transparency.NewIntegrator(store, transparency.Config{
		Origin: checkpointOrigin, Key: w.checkpointKey,
		Publishers: []transparency.Publisher{&transparency.FilePublisher{Path: filepath.Join(t.TempDir(), "checkpoints.log")}},
		Interval:   100 * time.Millisecond, Poll: 20 * time.Millisecond,
	})
	intCtx, stopIntegrator := context.WithCancel(context.Background())
	var intWG sync.WaitGroup
	if !o.manualIntegration {
		intWG.Go(func() { _ = w.integrator.Run(intCtx) })
	}
	w.stopIntegration = func() {
		stopIntegrator()
		intWG.Wait()
	}
	proofs := httpapi.ProofOptions{Tree: store, VerifierKey: w.checkpointKey.VerifierKey}
	if o.servedKey != "" {
		proofs.VerifierKey = o.servedKey
	}
	if o.noTamperEvidence {
		proofs = httpapi.ProofOptions{}
	}
	w.api = httpapi.New(httpapi.Options{
		Ingester: batcher, Store: store, Auth: auth, Keys: store, DeadLetters: store, Records: records,
		MaxBodyBytes: 16 << 20,
		Health:       httpapi.HealthOptions{Checker: checker},
		Metrics:      httpapi.MetricsOptions{Exposition: metrics.Handler(), Dashboard: dashboard, Bottlenecks: dashboard},
		Alerts:       httpapi.AlertOptions{Store: store},
		Events:       httpapi.EventOptions{Reader: store, Exports: store, Secrets: store, HMACKey: func() []byte { return w.hmacKey }},
		Console:      httpapi.ConsoleOptions{Assets: console.Handler(), Overview: metrics, DeadLetterUsage: store},
		Reports:      httpapi.ReportOptions{Generator: w.reports, Runs: store},
		Proofs:       proofs,
		Config:       fileConfig{},
	})
	srv := httptest.NewServer(w.api)
	w.URL = srv.URL
	t.Cleanup(func() {
		w.api.EndStreams() // an open overview stream would hold Close forever
		srv.CloseClientConnections()
		srv.Close()
		w.api.Close()
		w.stopIntegration()
		stopRecords()
		recWG.Wait()
		_ = batcher.Close(context.Background())
	})
	for _, k := range []struct {
		name string
		role audit.Role
		orgs []string
	}{
		{"admin", audit.RoleAdmin, []string{audit.AllOrganizations}},
		{"operator", audit.RoleOperator, []string{audit.AllOrganizations}},
		{"auditor-a", audit.RoleAuditor, []string{orgA}},
		{"reader-a", audit.RoleReader, []string{orgA}},
		{"ingest", audit.RoleIngest, []string{audit.AllOrganizations}},
	} {
		w.keys[k.name] = w.newKey(k.name, k.role, k.orgs)
	}
	return w
}

// fileConfig reports a configuration followed in a file, as the worker
// started with --config does.
type fileConfig struct{}

func (fileConfig) ConfigStatus() any {
	loaded := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	return config.ReloadStatus{Source: "file:///etc/audit-worker/config.json", PendingRestart: []string{},
		SourceStatus: &config.SourceStatus{Version: "sha256:3f1c9a0e", LoadedAt: loaded, LastCheck: time.Now().UTC(), WatchMode: "fsnotify"}}
}

func (fileConfig) ConfigHealth() (bool, string) { return true, "" }

func (w *worker) pipelineConfig(hmacKey []byte) pipeline.Config {
	return pipeline.Config{Rules: audit.DefaultRules(), HMACKey: hmacKey, Breaker: w.breaker}
}

// newKey stores an API key and returns it.
func (w *worker) newKey(name string, role audit.Role, orgs []string) string {
	w.t.Helper()
	_, token, err := access.CreateKey(context.Background(), w.store,
		access.NewKey{Name: name, Role: role, Organizations: orgs, CreatedBy: "console test"}, time.Now())
	if err != nil {
		w.t.Fatalf("create key %s: %v", name, err)
	}
	return token
}

// call makes an API request with a bearer key and decodes the JSON answer
// into out (when not nil); it returns the status.
func (w *worker) call(method, path, key string, body any, out any) int {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			w.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.URL+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			w.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

type ingestResult struct {
	Stored   int `json:"stored"`
	Rejected int `json:"rejected"`
	Results  []struct {
		Status string `json:"status"`
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
	} `json:"results"`
}

// send posts events (JSON objects) with the ingest key.
func (w *worker) send(events ...[]byte) ingestResult {
	w.t.Helper()
	body := append([]byte{'['}, bytes.Join(events, []byte{','})...)
	body = append(body, ']')
	req, _ := http.NewRequest("POST", w.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.keys["ingest"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("send events: %v", err)
	}
	defer resp.Body.Close()
	var out ingestResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		w.t.Fatalf("send events: decode answer (HTTP %d): %v", resp.StatusCode, err)
	}
	return out
}

// event makes a valid, signed event of org, changed by edit.
func (w *worker) event(org string, edit func(map[string]any)) []byte {
	f := w.gen.Fields()
	f["organizationId"] = org
	if edit != nil {
		edit(f)
	}
	return w.gen.Seal(f)
}

// raiseAlert stores an alert of org and returns it.
func (w *worker) raiseAlert(org, title string, sev audit.Severity) audit.Alert {
	w.t.Helper()
	evidence, _ := json.Marshal(map[string]any{"principalId": "user-00042", "failures": 12, "windowSeconds": 300,
		"events": []string{"http:1", "http:2"}})
	r, err := w.store.RaiseAlert(context.Background(), audit.AlertCondition{
		OrganizationID: org, Type: audit.AlertSecurity, Severity: sev,
		DedupKey: "TEST:" + org + ":" + title, DedupWindow: time.Hour, Title: title,
		Description: "12 failed logins of user-00042 within 5 minutes", Source: "pattern-detector",
		Metadata: evidence, Tags: []string{"authentication"}, ObservedAt: time.Now(),
	})
	if err != nil {
		w.t.Fatalf("raise alert: %v", err)
	}
	return r.Alert
}

// newCheckpointKey makes a fresh Ed25519 note key named name.
func newCheckpointKey(t *testing.T, name string) transparency.Key {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := transparency.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// integrate integrates every row stored so far and signs a checkpoint of
// them, as the worker does on shutdown.
func (w *worker) integrate() {
	w.t.Helper()
	if err := w.integrator.Flush(context.Background()); err != nil {
		w.t.Fatalf("integrate: %v", err)
	}
}

// inCheckpoint waits until the row seq is covered by the latest checkpoint.
func (w *worker) inCheckpoint(seq int64) {
	w.t.Helper()
	testenv.EventuallyNil(w.t, 10*time.Second, func() error {
		_, err := transparency.ProveInclusion(context.Background(), w.store, seq, 0)
		return err
	})
}

// tamperProofPath changes, in the database, a stored tree hash that the
// proof of row seq in the latest checkpoint is made from; the checkpoint
// itself stays as signed.
func (w *worker) tamperProofPath(seq int64) {
	w.t.Helper()
	ctx := context.Background()
	leaf, err := w.store.LeafOf(ctx, seq)
	if err != nil {
		w.t.Fatalf("leaf of %d: %v", seq, err)
	}
	cp, err := w.store.LatestCheckpoint(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var read []int64
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		read = append(read, idx...)
		hs, err := w.store.ReadHashes(ctx, idx)
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, err
	})
	if _, err := tlog.ProveRecord(cp.Size, leaf.Index, reader); err != nil || len(read) == 0 {
		w.t.Fatalf("prove leaf %d of %d: %v (%d hashes read)", leaf.Index, cp.Size, err, len(read))
	}
	w.sqlExec(`UPDATE tlog_hashes SET hash = ? WHERE hash_index = ?`, make([]byte, 32), read[0])
}

// sqlExec changes the store's database behind the worker's back, as
// someone with access to the file could.
func (w *worker) sqlExec(query string, args ...any) {
	w.t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(w.dbPath), RawQuery: url.Values{"_pragma": {"busy_timeout(5000)"}}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		w.t.Fatalf("%s: %v", query, err)
	}
}
