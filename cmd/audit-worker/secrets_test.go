package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// lockedBuffer collects a command's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runCommand runs the root command with args and returns its stdout, its
// stderr (the log) and its error.
func runCommand(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errOut lockedBuffer
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// redisUser creates a Redis ACL user with password for this test and deletes
// it when the test ends; it returns the user's name.
func redisUser(t *testing.T, redisURL, password string) string {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opts)
	t.Cleanup(func() { admin.Close() })
	name := "audit-wiring-" + strings.TrimPrefix(testenv.RedisKeyPrefix(t), "test-")
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", name, "on", ">"+password, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("create Redis user: %v", err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", name) })
	return name
}

// workerSecrets are placed in every field, URL and variable that can carry
// one; none may appear in any output.
var workerSecrets = []string{
	"pg-userinfo-pw", "pg-query-pw", "pg-sslpassword-pw", "pg-encoded-pw",
	"redis-url-pw", "redis-field-pw",
	"s3-endpoint-pw", "aws-secret-access-key-pw",
	"hmac-encryption-key-secret-0123456789", "ingest-api-key-secret-0123", "operator-api-key-secret-0123",
	"otlp-endpoint-pw", "otlp-token-pw", "otlp-header-pw",
	"hook-url-pw", "hook-token-pw", "hook-secret-pw-0123456789",
}

// secretsDocument is a configuration with a secret wherever one can be
// written: PostgreSQL passwords in the user information and in three query
// parameters (one percent-encoded), the Redis password in its URL, the HMAC
// key, an API key, the OTLP endpoint's user information, query token and
// header, and a webhook's URL and secret.
func secretsDocument(pgURL, redisURL, prefix, dataDir string) []byte {
	doc := map[string]any{
		"enhancedClient": map[string]any{"connectionString": pgURL},
		"redis":          map[string]any{"url": redisURL, "keyPrefix": prefix},
		"security":       map[string]any{"encryptionKey": "hmac-encryption-key-secret-0123456789"},
		"http": map[string]any{"address": "127.0.0.1:0", "apiKeys": []string{"ingest-api-key-secret-0123"},
			"keys": []map[string]any{{"name": "ops", "key": "operator-api-key-secret-0123", "role": "operator", "organizations": []string{"*"}}}},
		"storage": map[string]any{"dataDir": dataDir},
		"observability": map[string]any{"tracing": map[string]any{
			"exporterType":     "otlp",
			"exporterEndpoint": "http://otlp-user:otlp-endpoint-pw@127.0.0.1:1/v1/traces?token=otlp-token-pw",
			"headers":          map[string]string{"x-api-key": "otlp-header-pw"},
		}},
		"monitoring": map[string]any{"notification": map[string]any{"enabled": true, "webhooks": []any{map[string]any{
			"name": "soc", "url": "http://hook-user:hook-url-pw@127.0.0.1:1/hook?token=hook-token-pw",
			"secret": "hook-secret-pw-0123456789",
		}}}},
	}
	data, _ := json.Marshal(doc)
	return data
}

// secretPostgresURL is the test database's URL with a password in each place
// libpq and pgx read one. The server trusts local connections, so the
// passwords are sent and ignored.
func secretPostgresURL(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "pg-userinfo-pw")
	u.RawQuery += "&password=pg-query-pw&sslpassword=pg-sslpassword-pw&pass%77ord=pg-encoded-pw"
	return u.String()
}

// noAWSFiles keeps the developer's AWS set-up out of the test and gives the
// SDK credentials that must never be shown.
func noAWSFiles(t *testing.T, endpoint string) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAWIRINGTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key-pw")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
}

// The worker, started as an operator starts it, with a secret in every place
// a URL or field can carry one and its configuration source (S3, credentials
// in the endpoint URL) unreachable: none of the secrets appears in the log,
// in `config show`, at /observability/config, /healthz, /health/config or
// /metrics, in `migrate`'s log, or in the errors of a start that fails.
func TestNoSecretLeavesTheWorker(t *testing.T) {
	pgURL := secretPostgresURL(t, testenv.PostgresDatabase(t))
	baseRedis := testenv.RedisURL(t)
	redisURL, err := url.Parse(baseRedis)
	if err != nil {
		t.Fatal(err)
	}
	redisURL.User = url.UserPassword(redisUser(t, baseRedis, "redis-url-pw"), "redis-url-pw")
	prefix := testenv.RedisKeyPrefix(t)
	dir := t.TempDir()
	doc := secretsDocument(pgURL, redisURL.String(), prefix, filepath.Join(dir, "data"))
	t.Cleanup(func() { deleteKeys(t, baseRedis, prefix) })

	// The S3 endpoint refuses connections: the worker starts from its cached
	// copy, and the fetch error (which names the endpoint) reaches the log,
	// the status and the health check.
	noAWSFiles(t, "http://s3-access-key:s3-endpoint-pw@127.0.0.1:1")
	ref := "s3://wiring-config/worker.json"
	src, err := config.OpenSource(ref, config.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "config-cache.json")
	t.Setenv("AUDIT_CONFIG_CACHE", cache)
	if err := config.WriteCache(cache, config.CachedDocument{Source: src.String(), Version: `"etag-1"`,
		SavedAt: time.Now(), Document: doc}); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		cmd := newRootCommand()
		cmd.SetArgs([]string{"--config", ref, "run"})
		cmd.SetOut(io.Discard)
		cmd.SetErr(log)
		done <- cmd.ExecuteContext(ctx)
	}()
	base := waitForStart(t, log, done)
	key := "operator-api-key-secret-0123"
	for _, path := range []string{"/observability/config", "/healthz", "/health/config", "/health/database", "/health/redis", "/metrics"} {
		outputs["GET "+path] = getBody(t, base+path, key)
	}
	if !strings.Contains(outputs["GET /observability/config"], `"degraded":true`) ||
		!strings.Contains(outputs["GET /health/config"], "degraded") {
		t.Errorf("the worker does not say it runs on the cached configuration:\n%s\n%s",
			outputs["GET /observability/config"], outputs["GET /health/config"])
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("worker: %v", err)
	}
	outputs["worker log"] = log.String()
	for _, want := range []string{"configuration source unreachable", "127.0.0.1:1", "audit worker started", `"stopped"`} {
		if !strings.Contains(outputs["worker log"], want) {
			t.Errorf("the worker log lacks %q: the test would not see a leak there", want)
		}
	}

	file := filepath.Join(dir, "worker.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	outputs["config show"], _, err = runCommand(context.Background(), "config", "show", file)
	if err != nil || !strings.Contains(outputs["config show"], "127.0.0.1:5432") {
		t.Errorf("config show: %v\n%s", err, outputs["config show"])
	}
	var stdout string
	stdout, outputs["migrate log"], err = runCommand(context.Background(), "--config", file, "migrate")
	if err != nil || !strings.Contains(outputs["migrate log"], "migrations applied") {
		t.Errorf("migrate: %v\n%s%s", err, stdout, outputs["migrate log"])
	}

	// Starts that fail: their errors and logs quote what could not be reached.
	for name, broken := range map[string]func(map[string]any){
		"PostgreSQL unreachable": func(d map[string]any) {
			d["enhancedClient"] = map[string]any{"connectionString": strings.Replace(pgURL, "127.0.0.1:5432", "127.0.0.1:1", 1) + "&connect_timeout=2"}
		},
		"Redis unreachable": func(d map[string]any) {
			d["redis"] = map[string]any{"url": "redis://user:redis-url-pw@127.0.0.1:1/0"}
		},
		"Redis with redis.password unreachable": func(d map[string]any) {
			d["redis"] = map[string]any{"host": "127.0.0.1", "port": 1, "password": "redis-field-pw"}
		},
	} {
		var d map[string]any
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		broken(d)
		data, _ := json.Marshal(d)
		path := filepath.Join(t.TempDir(), "broken.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, logText, err := runCommand(ctx, "--config", path, "run")
		cancel()
		if err == nil {
			t.Errorf("%s: the worker started", name)
			continue
		}
		outputs[name+": error"] = err.Error()
		outputs[name+": log"] = logText
	}

	for where, text := range outputs {
		for _, secret := range workerSecrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows %s:\n%s", where, secret, text)
			}
		}
	}
}

// waitForStart reads the log until the worker says it started, and returns
// its base URL.
func waitForStart(t *testing.T, log *lockedBuffer, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(log.String()))
		for sc.Scan() {
			var line struct{ Msg, HTTP string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "audit worker started" {
				return line.HTTP
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the worker stopped before it started: %v\n%s", err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the worker did not start:\n%s", log.String())
	return ""
}

func getBody(t *testing.T, url, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%s\n%s", resp.Status, body)
}

func deleteKeys(t *testing.T, redisURL, prefix string) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Error(err)
		return
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if keys, _ := rdb.Keys(context.Background(), prefix+"*").Result(); len(keys) > 0 {
		rdb.Del(context.Background(), keys...)
	}
}
