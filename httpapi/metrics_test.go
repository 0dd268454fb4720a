package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

// newMetricsServer serves the metric routes over real telemetry fed with one
// batch, or, unconfigured, with no metric options at all.
func newMetricsServer(t *testing.T, configured bool) *httptest.Server {
	t.Helper()
	opts := Options{Auth: adminAuth(testKey)}
	if configured {
		m := telemetry.NewMetrics(telemetry.MetricsOptions{})
		now := time.Now()
		m.ObserveBatch(context.Background(), &pipeline.BatchReport{
			Inputs:      []pipeline.Input{{Source: "http", ReceivedAt: now.Add(-20 * time.Millisecond)}},
			Outcomes:    []pipeline.Outcome{{Status: pipeline.StatusStored, Seq: 1}},
			Accepted:    []pipeline.AcceptedEvent{{Input: 0, Stored: true, Seq: 1}},
			Stages:      pipeline.StageTimes{Validate: time.Millisecond, Verify: time.Millisecond, Store: 5 * time.Millisecond},
			CommittedAt: now,
		})
		d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
		opts.Metrics = MetricsOptions{Exposition: m.Handler(), Dashboard: d, Bottlenecks: d}
	}
	srv := httptest.NewServer(New(opts))
	t.Cleanup(srv.Close)
	return srv
}

// metricsGet fetches path, with the API key when authorized, and returns the
// status, content type and body.
func metricsGet(t *testing.T, srv *httptest.Server, path string, authorized bool) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if authorized {
		req.Header.Set("Authorization", "Bearer "+testKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func metricsJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, body)
	}
	return doc
}

func TestMetricsExpositionIsPublic(t *testing.T) {
	srv := newMetricsServer(t, true)
	code, ctype, body := metricsGet(t, srv, "/metrics", false)
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
		t.Fatalf("GET /metrics: %d %q", code, ctype)
	}
	for _, want := range []string{`audit_events_received_total{source="http"} 1`, "audit_events_stored_total 1", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestObservabilityMetricRoutes(t *testing.T) {
	srv := newMetricsServer(t, true)
	for _, tc := range []struct {
		path  string
		check func(t *testing.T, doc map[string]any)
	}{
		{"/observability/dashboard", func(t *testing.T, doc map[string]any) {
			for _, key := range []string{"overview", "throughput", "latency", "stages", "queue", "circuitBreaker", "recentErrors", "runtime"} {
				if _, ok := doc[key]; !ok {
					t.Errorf("dashboard lacks %q", key)
				}
			}
			o := doc["overview"].(map[string]any)
			if o["totalEvents"] != 1.0 || o["systemStatus"] != "HEALTHY" {
				t.Errorf("overview = %v", o)
			}
		}},
		{"/observability/metrics/enhanced", func(t *testing.T, doc map[string]any) {
			if doc["totalEvents"] != 1.0 || doc["averageBatchTimeMs"] != 7.0 {
				t.Errorf("enhanced = %v", doc)
			}
			if b, _ := doc["bottlenecks"].([]any); len(b) != 3 {
				t.Errorf("bottlenecks = %v", doc["bottlenecks"])
			}
		}},
		{"/observability/metrics/enhanced?format=json", func(t *testing.T, doc map[string]any) {
			if _, ok := doc["throughput"]; !ok {
				t.Errorf("enhanced json = %v", doc)
			}
		}},
		{"/observability/bottlenecks", func(t *testing.T, doc map[string]any) {
			stages, _ := doc["stages"].([]any)
			if len(stages) != 3 || doc["dominant"] != "store" || !strings.Contains(doc["summary"].(string), "store takes") {
				t.Errorf("bottlenecks = %v", doc)
			}
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if code, _, body := metricsGet(t, srv, tc.path, false); code != http.StatusUnauthorized ||
				metricsJSON(t, body)["error"].(map[string]any)["code"] != "unauthorized" {
				t.Errorf("without a key: %d %s", code, body)
			}
			code, ctype, body := metricsGet(t, srv, tc.path, true)
			if code != http.StatusOK || ctype != "application/json" {
				t.Fatalf("%d %q: %s", code, ctype, body)
			}
			tc.check(t, metricsJSON(t, body))
		})
	}
}

func TestEnhancedMetricsFormats(t *testing.T) {
	srv := newMetricsServer(t, true)
	code, ctype, body := metricsGet(t, srv, "/observability/metrics/enhanced?format=prometheus", true)
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") ||
		!strings.Contains(string(body), "# TYPE audit_stage_duration_seconds histogram") {
		t.Errorf("format=prometheus: %d %q", code, ctype)
	}
	if code, _, _ := metricsGet(t, srv, "/observability/metrics/enhanced?format=prometheus", false); code != http.StatusUnauthorized {
		t.Errorf("format=prometheus without a key: %d", code)
	}
	code, ctype, body = metricsGet(t, srv, "/observability/metrics/enhanced?format=xml", true)
	if code != http.StatusBadRequest || ctype != "application/json" ||
		metricsJSON(t, body)["error"].(map[string]any)["code"] != "invalid" {
		t.Errorf("format=xml: %d %q %s", code, ctype, body)
	}
}

func TestMetricRoutesUnconfigured(t *testing.T) {
	srv := newMetricsServer(t, false)
	for _, path := range []string{
		"/metrics", "/observability/dashboard", "/observability/metrics/enhanced",
		"/observability/metrics/enhanced?format=prometheus", "/observability/bottlenecks",
	} {
		code, ctype, body := metricsGet(t, srv, path, true)
		if code != http.StatusServiceUnavailable || ctype != "application/json" {
			t.Errorf("%s: %d %q", path, code, ctype)
			continue
		}
		e, _ := metricsJSON(t, body)["error"].(map[string]any)
		if e["code"] != "unavailable" || !strings.HasSuffix(e["message"].(string), "not configured") {
			t.Errorf("%s: %s", path, body)
		}
	}
	if code, _, _ := metricsGet(t, srv, "/observability/dashboard", false); code != http.StatusUnauthorized {
		t.Errorf("unconfigured dashboard without a key: %d, want 401 before anything else", code)
	}
}
