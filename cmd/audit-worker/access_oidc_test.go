package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// A worker configured with an OIDC issuer takes its tokens: an auditor's
// valid token searches events within its organisations; a tampered, an
// expired token and one whose role maps to nothing get 401.
func TestOIDCThroughTheWorker(t *testing.T) {
	iss := newAccessIssuer(t)
	cfg := accessConfig(t, t.TempDir(), func(doc map[string]any) {
		doc["http"].(map[string]any)["oidc"] = map[string]any{"issuer": iss.srv.URL, "audience": "audit-worker",
			"roleMapping": map[string]string{"auditors": "auditor"}, "clockSkewMs": 30000}
	})
	w := runInProcess(t, cfg)
	valid := iss.token(t, nil)
	for _, c := range []struct {
		name, token, path string
		want              int
	}{
		{"valid auditor token", valid, "/v1/events", 200},
		{"valid token, its organisation", valid, "/v1/events?organizationId=org-a", 200},
		{"valid token, another organisation", valid, "/v1/events?organizationId=org-b", 403},
		{"valid token, an admin route", valid, "/v1/keys", 403},
		{"tampered token", tampered(t, valid), "/v1/events", 401},
		{"expired token", iss.token(t, map[string]any{"exp": time.Now().Add(-10 * time.Minute).Unix()}), "/v1/events", 401},
		{"unmapped role", iss.token(t, map[string]any{"roles": []string{"janitors"}}), "/v1/events", 401},
		{"no organisations", iss.token(t, map[string]any{"organizations": nil}), "/v1/events", 401},
		{"another audience", iss.token(t, map[string]any{"aud": "another-service"}), "/v1/events", 401},
	} {
		code, body := w.call(t, "GET", c.path, bearerHeader(c.token), "")
		if code != c.want {
			t.Errorf("%s: GET %s: %d, want %d: %s", c.name, c.path, code, c.want, body)
		}
		t.Logf("%-30s GET %-34s %d %.120s", c.name, c.path, code, body)
	}
}

// Repeated 403s of one principal, recorded as audit.access.denied events,
// raise an UNAUTHORIZED_ACCESS alert in a worker with monitoring on (its
// default): three refusals within ten minutes by default.
func TestRepeatedForbiddenRaisesUnauthorizedAccessAlert(t *testing.T) {
	cfg := accessConfig(t, t.TempDir(), nil)
	reader := createKey(t, cfg, "--name", "curious reader", "--role", "reader", "--org", "org-a")
	w := runInProcess(t, cfg)
	for range 3 {
		if code, body := w.call(t, "GET", "/v1/keys", bearerHeader(reader.Key), ""); code != 403 {
			t.Fatalf("reader lists keys: %d, want 403: %s", code, body)
		}
	}
	var alert map[string]any
	testenv.Eventually(t, 10*time.Second, "an UNAUTHORIZED_ACCESS alert", func() bool {
		code, body := w.call(t, "GET", "/v1/alerts?type=SECURITY&organizationId=org-a", bearerHeader(accessAdminKey), "")
		var list struct{ Alerts []map[string]any }
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
			t.Fatalf("GET /v1/alerts: %d %s", code, body)
		}
		for _, a := range list.Alerts {
			if strings.Contains(a["title"].(string), "UNAUTHORIZED_ACCESS") {
				alert = a
			}
		}
		return alert != nil
	})
	raw, _ := json.Marshal(alert)
	if alert["severity"] != "CRITICAL" || alert["organizationId"] != "org-a" || !strings.Contains(string(raw), "key:"+reader.ID) {
		t.Errorf("alert %s: want CRITICAL, org-a, naming key:%s", raw, reader.ID)
	}
	t.Logf("alert raised after 3 refusals: %s", raw)
}
