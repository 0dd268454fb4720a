package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
)

// refusedConfig reports a configuration version that was refused, with the
// values the refusal names.
type refusedConfig struct{ message string }

func (refusedConfig) ConfigStatus() any              { return nil }
func (c refusedConfig) ConfigHealth() (bool, string) { return false, c.message }

// unreachableDatabase serves the health routes over a PostgreSQL store whose
// database is then dropped, and a configuration whose latest version was
// refused. It returns the server and what must not leak without a key.
func unreachableDatabase(t *testing.T) (*httptest.Server, []string) {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.PostgresDatabase(t)
	store, err := postgres.Open(ctx, postgres.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, refusal := config.Parse([]byte(`{"redis":{"port":70000},"http":{"apiKeys":["a-refused-secret-key-0123"]}}`))
	if refusal == nil {
		t.Fatal("the refused configuration was accepted")
	}
	c := health.NewChecker(health.Options{TTL: -1})
	c.Add("database", health.Database(store))
	c.Add("config", health.Config(refusedConfig{message: "version sha256:abc refused: " + refusal.Error()}.ConfigHealth))
	srv := httptest.NewServer(New(Options{Store: store, Auth: adminAuth(testKey), Health: HealthOptions{Checker: c}}))
	t.Cleanup(srv.Close)

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	admin, err := pgx.Connect(ctx, testenv.PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	// Idle connections first report their own termination; once they are
	// gone, every ping names the missing database.
	for i := 0; ; i++ {
		err := store.Ping(ctx)
		if err != nil && strings.Contains(err.Error(), dbName) {
			break
		}
		if i == 20 {
			t.Fatalf("ping after the database was dropped: %v", err)
		}
	}
	secrets := []string{dbName, u.User.Username(), u.Host, u.Port(), "SQLSTATE", "70000", "redis.port", "refused"}
	return srv, secrets
}

func getRaw(t *testing.T, url, authorization string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// Without a valid key, health says only the statuses and component names,
// even when the database is down and its errors name its user, database,
// host and port, and a refused configuration names its values.
func TestHealthWithoutKeyShowsStatusesOnly(t *testing.T) {
	srv, secrets := unreachableDatabase(t)
	for _, auth := range []string{"", "Bearer wrong-key-0123456789", "Basic " + testKey} {
		for _, tc := range []struct {
			path string
			code int
			want string
		}{
			{"/healthz", http.StatusServiceUnavailable, `{"status":"CRITICAL","components":{"config":{"status":"WARNING"},"database":{"status":"CRITICAL"}}}`},
			{"/health/database", http.StatusServiceUnavailable, `{"status":"CRITICAL"}`},
			{"/health/config", http.StatusOK, `{"status":"WARNING"}`},
			{"/readyz", http.StatusServiceUnavailable, `{"ready":false,"reasons":["database"]}`},
		} {
			code, body := getRaw(t, srv.URL+tc.path, auth)
			if code != tc.code || strings.TrimSpace(body) != tc.want {
				t.Errorf("GET %s with %q: %d %s\nwant %d %s", tc.path, auth, code, body, tc.code, tc.want)
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("GET %s with %q shows %q: %s", tc.path, auth, s, body)
				}
			}
		}
	}
}

// With a valid key (any case of the scheme), health says everything: the
// database's error and the refused configuration's rules.
func TestHealthWithKeyShowsDetails(t *testing.T) {
	srv, secrets := unreachableDatabase(t)
	dbName := secrets[0]
	for _, auth := range []string{"Bearer " + testKey, "bearer " + testKey} {
		code, body := getJSONWith(t, srv.URL+"/health/database", auth)
		msg, _ := body["message"].(string)
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, "database unreachable") || !strings.Contains(msg, dbName) {
			t.Errorf("%q: /health/database %d %v, want the database's error", auth, code, body)
		}
		if _, ok := body["lastCheck"]; !ok {
			t.Errorf("%q: /health/database without its details: %v", auth, body)
		}
		code, body = getJSONWith(t, srv.URL+"/health/config", auth)
		if msg, _ := body["message"].(string); code != http.StatusOK || !strings.Contains(msg, "redis.port: must be between 1 and 65535 (is 70000)") {
			t.Errorf("%q: /health/config %d %v, want the refused version's rules", auth, code, body)
		}
		code, body = getJSONWith(t, srv.URL+"/healthz", auth)
		db, _ := body["components"].(map[string]any)["database"].(map[string]any)
		if msg, _ := db["message"].(string); code != http.StatusServiceUnavailable || !strings.Contains(msg, dbName) {
			t.Errorf("%q: /healthz %d %v, want the database's error", auth, code, body)
		}
		code, body = getJSONWith(t, srv.URL+"/readyz", auth)
		reasons, _ := body["reasons"].([]any)
		if code != http.StatusServiceUnavailable || len(reasons) != 1 ||
			!strings.HasPrefix(reasons[0].(string), "database: database unreachable: ") {
			t.Errorf("%q: /readyz %d %v, want the database's error", auth, code, body)
		}
	}
}

// The readiness function's reasons are details too.
func TestReadyzWithoutKeyNamesWhatIsNotReady(t *testing.T) {
	d := &deps{}
	srv := newHealthServer(t, d)
	d.set(func(d *deps) {
		d.redisErr = context.DeadlineExceeded
		d.readyErr = io.ErrUnexpectedEOF
	})
	code, body := getJSONWith(t, srv.URL+"/readyz", "")
	var reasons []string
	for _, r := range body["reasons"].([]any) {
		reasons = append(reasons, r.(string))
	}
	if code != http.StatusServiceUnavailable || !slices.Equal(reasons, []string{"redis", "worker"}) {
		t.Errorf("/readyz without a key: %d %v, want the names redis and worker only", code, body)
	}
}
