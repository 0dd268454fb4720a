package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/console"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/report"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
)

// Organisations of the test worker's data.
const (
	orgA = "org-a"
	orgB = "org-b"
)

// worker is a worker wired as cmd/audit-worker wires it (pipeline, metrics,
// dashboard, health, access control, access records, the console), on a
// real SQLite store, serving HTTP on a local port.
type worker struct {
	t       *testing.T
	URL     string
	store   *sqlite.Store
	proc    *pipeline.Processor
	breaker *pipeline.Breaker
	api     *httpapi.Server
	hmacKey []byte
	gen     *eventgen.Generator
	keys    map[string]string // by role-org name, e.g. "operator", "reader-a"
	proofs  *proofShim
	reports *report.Generator
}

func newWorker(t *testing.T) *worker {
	t.Helper()
	store, _ := teststores.SQLite(t)
	w := &worker{t: t, store: store, hmacKey: []byte("console-test-hmac-key-0123456789"), keys: map[string]string{}}
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
	w.api = httpapi.New(httpapi.Options{
		Ingester: batcher, Store: store, Auth: auth, Keys: store, DeadLetters: store, Records: records,
		MaxBodyBytes: 16 << 20,
		Health:       httpapi.HealthOptions{Checker: checker},
		Metrics:      httpapi.MetricsOptions{Exposition: metrics.Handler(), Dashboard: dashboard, Bottlenecks: dashboard},
		Alerts:       httpapi.AlertOptions{Store: store},
		Events:       httpapi.EventOptions{Reader: store, Exports: store, Secrets: store, HMACKey: func() []byte { return w.hmacKey }},
		Console:      httpapi.ConsoleOptions{Assets: console.Handler(), Overview: metrics, DeadLetterUsage: store},
		Reports:      httpapi.ReportOptions{Generator: w.reports, Runs: store},
		Config:       fileConfig{},
	})
	w.proofs = &proofShim{w: w}
	srv := httptest.NewServer(w.proofs.wrap(w.api))
	w.URL = srv.URL
	t.Cleanup(func() {
		w.api.EndStreams() // an open overview stream would hold Close forever
		srv.CloseClientConnections()
		srv.Close()
		w.api.Close()
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

// proofShim serves GET /v1/events/{id}/proof and GET /v1/checkpoints/key in
// the documented shapes, from a tree built here with golang.org/x/mod's
// RFC 6962 implementation over every stored row, until the worker's own
// tamper-evidence endpoints are merged. tamper corrupts a proof hash.
type proofShim struct {
	w      *worker
	mu     sync.Mutex
	tamper bool
}

func (p *proofShim) wrap(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events/{id}/proof", p.serveProof)
	mux.HandleFunc("GET /v1/checkpoints/key", p.serveKey)
	mux.Handle("/", api)
	return mux
}

func (p *proofShim) setTamper(on bool) {
	p.mu.Lock()
	p.tamper = on
	p.mu.Unlock()
}

func (p *proofShim) serveKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, testLog.vkey)
}

func (p *proofShim) serveProof(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	proof, err := testLog.prove(r.Context(), p.w.store, seq)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	if p.tamper && len(proof.Hashes) > 0 {
		h, _ := base64.StdEncoding.DecodeString(proof.Hashes[0])
		h[0] ^= 0xff
		proof.Hashes[0] = base64.StdEncoding.EncodeToString(h)
		proof.Proof = tlogProof(proof) // a lying log lies consistently
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(proof)
}
