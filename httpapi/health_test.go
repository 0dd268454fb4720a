package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/postgres"
)

// deps are the switchable dependencies behind a test checker.
type deps struct {
	mu       sync.Mutex
	dbErr    error
	redisErr error
	waiting  int64
	breaker  pipeline.BreakerState
	stats    health.ProcessingStats
	cfgOK    bool
	cfgMsg   string
	readyErr error
}

func (d *deps) set(f func(d *deps)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *deps) get() deps {
	d.mu.Lock()
	defer d.mu.Unlock()
	return deps{dbErr: d.dbErr, redisErr: d.redisErr, waiting: d.waiting, breaker: d.breaker,
		stats: d.stats, cfgOK: d.cfgOK, cfgMsg: d.cfgMsg, readyErr: d.readyErr}
}

// newHealthServer serves a checker with every component the worker wires,
// uncached so each request sees the current state of d.
func newHealthServer(t *testing.T, d *deps) *httptest.Server {
	t.Helper()
	d.set(func(d *deps) { d.breaker, d.cfgOK = pipeline.BreakerClosed, true })
	c := health.NewChecker(health.Options{TTL: -1})
	c.Add("database", health.Database(health.PingFunc(func(context.Context) error { return d.get().dbErr })))
	c.Add("redis", health.Redis(health.PingFunc(func(context.Context) error { return d.get().redisErr })))
	c.Add("queue", health.Queue(func(context.Context) (map[string]int64, error) {
		return map[string]int64{"wait": d.get().waiting, "delayed": 7}, nil
	}, c.Thresholds))
	c.Add("processing", health.Processing(func() health.ProcessingStats { return d.get().stats }, c.Thresholds))
	c.Add("circuit-breaker", health.CircuitBreaker(func() string { return string(d.get().breaker) }))
	c.Add("config", health.Config(func() (bool, string) { g := d.get(); return g.cfgOK, g.cfgMsg }))
	srv := httptest.NewServer(New(Options{
		Auth:   adminAuth(testKey), // health routes answer without it too, with statuses only
		Health: HealthOptions{Checker: c, Ready: func(context.Context) error { return d.get().readyErr }},
	}))
	t.Cleanup(srv.Close)
	return srv
}

// getJSON fetches url with the test key (which shows every detail) and
// decodes the body.
func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	return getJSONWith(t, url, "Bearer "+testKey)
}

// getJSONWith fetches url with the given Authorization header ("" for none)
// and decodes the body.
func getJSONWith(t *testing.T, url, authorization string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return resp.StatusCode, body
}

// checkComponentShape asserts the original's ComponentHealth shape.
func checkComponentShape(t *testing.T, where string, c any) map[string]any {
	t.Helper()
	m, ok := c.(map[string]any)
	if !ok {
		t.Fatalf("%s: component is %T", where, c)
	}
	if _, ok := m["responseTime"].(float64); !ok {
		t.Errorf("%s: responseTime missing: %v", where, m)
	}
	if ts, _ := m["lastCheck"].(string); ts == "" {
		t.Errorf("%s: lastCheck missing: %v", where, m)
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("%s: lastCheck %q: %v", where, ts, err)
	}
	if msg, present := m["message"]; present && msg == "" {
		t.Errorf("%s: empty message should be left out", where)
	}
	return m
}

func TestHealthzReport(t *testing.T) {
	d := &deps{}
	srv := newHealthServer(t, d)

	code, body := getJSON(t, srv.URL+"/healthz")
	if code != http.StatusOK || body["status"] != "OK" {
		t.Fatalf("all healthy: %d %v", code, body)
	}
	if ts, _ := body["timestamp"].(string); ts == "" {
		t.Errorf("timestamp missing: %v", body)
	}
	comps, _ := body["components"].(map[string]any)
	for _, name := range []string{"database", "redis", "queue", "processing", "circuit-breaker", "config"} {
		m := checkComponentShape(t, name, comps[name])
		if m["status"] != "OK" {
			t.Errorf("%s: %v", name, m)
		}
	}
	if _, ok := comps["database"].(map[string]any)["message"]; ok {
		t.Errorf("OK database carries a message: %v", comps["database"])
	}
	if det, _ := comps["queue"].(map[string]any)["details"].(map[string]any); det["delayed"] != float64(7) {
		t.Errorf("queue details: %v", comps["queue"])
	}

	for _, tc := range []struct {
		change func(d *deps)
		code   int
		status string
	}{
		{func(d *deps) { d.breaker = pipeline.BreakerHalfOpen }, http.StatusOK, "WARNING"},
		{func(d *deps) { d.cfgOK, d.cfgMsg = false, "running on the cached configuration" }, http.StatusOK, "WARNING"},
		{func(d *deps) { d.waiting = 100 }, http.StatusOK, "WARNING"},
		{func(d *deps) { d.breaker = pipeline.BreakerOpen }, http.StatusServiceUnavailable, "CRITICAL"},
		{func(d *deps) { d.dbErr = errors.New("connection refused") }, http.StatusServiceUnavailable, "CRITICAL"},
	} {
		d.set(func(d *deps) {
			d.dbErr, d.waiting, d.breaker, d.cfgOK, d.cfgMsg = nil, 0, pipeline.BreakerClosed, true, ""
			tc.change(d)
		})
		if code, body := getJSON(t, srv.URL+"/healthz"); code != tc.code || body["status"] != tc.status {
			t.Errorf("%+v: %d %v, want %d %s", d.get(), code, body["status"], tc.code, tc.status)
		}
	}
}

func TestHealthComponentRoutes(t *testing.T) {
	d := &deps{}
	srv := newHealthServer(t, d)
	for _, name := range []string{"database", "redis", "queue", "processing", "circuit-breaker", "circuitBreaker", "config"} {
		code, body := getJSON(t, srv.URL+"/health/"+name)
		if code != http.StatusOK || body["status"] != "OK" {
			t.Errorf("%s: %d %v", name, code, body)
		}
		checkComponentShape(t, name, body)
	}

	d.set(func(d *deps) {
		d.breaker = pipeline.BreakerOpen
		d.redisErr = errors.New("NOAUTH")
		d.stats = health.ProcessingStats{Events: 10, LatencyP95Ms: 2500}
	})
	for _, tc := range []struct {
		path, status, message string
		code                  int
	}{
		{"circuit-breaker", "CRITICAL", "circuit breaker is open: the store kept failing", http.StatusServiceUnavailable},
		{"circuitBreaker", "CRITICAL", "circuit breaker is open: the store kept failing", http.StatusServiceUnavailable},
		{"redis", "CRITICAL", "redis unreachable: NOAUTH", http.StatusServiceUnavailable},
		{"processing", "WARNING", "p95 latency 2500 ms (threshold 5000 ms)", http.StatusOK},
		{"database", "OK", "", http.StatusOK},
	} {
		code, body := getJSON(t, srv.URL+"/health/"+tc.path)
		msg, _ := body["message"].(string)
		if code != tc.code || body["status"] != tc.status || msg != tc.message {
			t.Errorf("%s: %d %v, want %d %s %q", tc.path, code, body, tc.code, tc.status, tc.message)
		}
	}
	if _, body := getJSON(t, srv.URL+"/health/circuitBreaker"); body["details"].(map[string]any)["state"] != "OPEN" {
		t.Errorf("breaker details: %v", body)
	}
}

func TestHealthUnknownComponent(t *testing.T) {
	d := &deps{}
	srv := newHealthServer(t, d)
	code, body := getJSON(t, srv.URL+"/health/nope")
	if code != http.StatusNotFound {
		t.Fatalf("unknown component: %d %v", code, body)
	}
	e, _ := body["error"].(map[string]any)
	if e["code"] != "not_found" || e["message"] != `unknown health component "nope"` {
		t.Errorf("error: %v", body)
	}
	var names []string
	for _, n := range body["components"].([]any) {
		names = append(names, n.(string))
	}
	want := []string{"circuit-breaker", "config", "database", "processing", "queue", "redis"}
	if !slices.Equal(names, want) {
		t.Errorf("components %v, want %v", names, want)
	}

	// A component the worker does not configure is unknown too.
	bare := httptest.NewServer(New(Options{Store: pingerFunc(func(context.Context) error { return nil }), Auth: adminAuth(testKey)}))
	defer bare.Close()
	code, body = getJSON(t, bare.URL+"/health/redis")
	if code != http.StatusNotFound || !slices.Equal(body["components"].([]any), []any{"database"}) {
		t.Errorf("unconfigured redis: %d %v", code, body)
	}
}

func TestReadyz(t *testing.T) {
	d := &deps{}
	srv := newHealthServer(t, d)
	code, body := getJSON(t, srv.URL+"/readyz")
	if code != http.StatusOK || body["ready"] != true || len(body) != 1 {
		t.Fatalf("ready: %d %v", code, body)
	}
	// A backlog, an open breaker or a slow store do not take the worker out of rotation.
	d.set(func(d *deps) { d.waiting, d.breaker = 10000, pipeline.BreakerOpen })
	if code, body := getJSON(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("backlog only: %d %v", code, body)
	}

	d.set(func(d *deps) {
		d.dbErr = errors.New("connection refused")
		d.redisErr = errors.New("i/o timeout")
		d.readyErr = errors.Join(errors.New("migrations: not applied yet"), errors.New("queue consumer not started"))
	})
	code, body = getJSON(t, srv.URL+"/readyz")
	var reasons []string
	for _, r := range body["reasons"].([]any) {
		reasons = append(reasons, r.(string))
	}
	want := []string{
		"database: database unreachable: connection refused",
		"redis: redis unreachable: i/o timeout",
		"migrations: not applied yet",
		"queue consumer not started",
	}
	if code != http.StatusServiceUnavailable || body["ready"] != false || !slices.Equal(reasons, want) {
		t.Errorf("not ready: %d %v, want reasons %q", code, body, want)
	}

	d.set(func(d *deps) { d.dbErr, d.redisErr = nil, nil })
	code, body = getJSON(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || len(body["reasons"].([]any)) != 2 {
		t.Errorf("only the readiness function refuses: %d %v", code, body)
	}
}

// Without a Checker, /healthz works from Options.Store and Options.Config as
// it always did, checking the store on every request.
func TestHealthzWithoutChecker(t *testing.T) {
	f := newFixture(t, 1<<20)
	code, body := getJSON(t, f.srv.URL+"/healthz")
	comps, _ := body["components"].(map[string]any)
	if code != http.StatusOK || body["status"] != "OK" || comps["database"].(map[string]any)["status"] != "OK" {
		t.Fatalf("healthy: %d %v", code, body)
	}
	if code, body := getJSON(t, f.srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d %v", code, body)
	}
	f.store.Close() // the store is gone: the worker is not healthy
	if code, body := getJSON(t, f.srv.URL+"/healthz"); code != http.StatusServiceUnavailable || body["status"] != "CRITICAL" {
		t.Errorf("store closed: %d %v, want 503", code, body)
	}
	if code, _ := getJSON(t, f.srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz with the store closed: %d, want 503", code)
	}

	stale := httptest.NewServer(New(Options{
		Store:  pingerFunc(func(context.Context) error { return nil }),
		Config: staleConfig{},
		Auth:   adminAuth(testKey),
	}))
	defer stale.Close()
	code, body = getJSON(t, stale.URL+"/healthz")
	cfg, _ := body["components"].(map[string]any)["config"].(map[string]any)
	if code != http.StatusOK || body["status"] != "WARNING" || cfg["message"] != "running on the cached configuration" {
		t.Errorf("stale configuration: %d %v", code, body)
	}
}

type pingerFunc func(ctx context.Context) error

func (f pingerFunc) Ping(ctx context.Context) error { return f(ctx) }

type staleConfig struct{}

func (staleConfig) ConfigStatus() any { return nil }
func (staleConfig) ConfigHealth() (bool, string) {
	return false, "running on the cached configuration"
}

// The checks as the worker wires them, against the real PostgreSQL and Redis.
func TestReadyzOnPostgresAndRedis(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, postgres.Config{URL: testenv.PostgresDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	c := health.NewChecker(health.Options{TTL: -1})
	c.Add("database", health.Database(store))
	c.Add("redis", health.Redis(health.PingFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })))
	srv := httptest.NewServer(New(Options{Store: store, Health: HealthOptions{Checker: c}, Auth: adminAuth(testKey)}))
	defer srv.Close()

	if code, body := getJSON(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d %v", code, body)
	}
	if code, body := getJSON(t, srv.URL+"/health/database"); code != http.StatusOK || body["details"].(map[string]any)["connected"] != true {
		t.Fatalf("database: %d %v", code, body)
	}
	store.Close()
	code, body := getJSON(t, srv.URL+"/readyz")
	reasons, _ := body["reasons"].([]any)
	if code != http.StatusServiceUnavailable || len(reasons) != 1 || !strings.HasPrefix(reasons[0].(string), "database: database unreachable: ") {
		t.Errorf("store closed: %d %v", code, body)
	}
}
