package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The configuration's own admin key, for the requests a test makes as admin.
const accessAdminKey = "access-test-admin-key-0123456789"

// accessIssuer is a local OpenID provider: discovery and JWKS over HTTP,
// with an RSA key made for the test.
type accessIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newAccessIssuer(t *testing.T) *accessIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &accessIssuer{key: key}
	mux := http.NewServeMux()
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"authorization_endpoint":                iss.srv.URL + "/auth", "token_endpoint": iss.srv.URL + "/token"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	return iss
}

// token signs the claims of an org-a auditor, changed by over (nil deletes).
func (iss *accessIssuer) token(t *testing.T, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": iss.srv.URL, "aud": "audit-worker", "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "roles": []string{"auditors"},
		"organizations": []string{"org-a"}, "email": "alice@example.org"}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: iss.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), "k1"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// tampered is token with its claims changed after signing: an admin role.
func tampered(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["roles"] = []string{"admin"}
	changed, _ := json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(changed) + "." + parts[2]
}

// accessConfig writes a configuration of an embedded (SQLite) worker with
// the admin key above, a debug JSON log, and whatever change makes.
func accessConfig(t *testing.T, dir string, change func(doc map[string]any)) string {
	t.Helper()
	doc := map[string]any{
		"storage": map[string]any{"dataDir": filepath.Join(dir, "data"), "batchMaxWaitMs": 5},
		"http": map[string]any{"address": "127.0.0.1:0", "keys": []map[string]any{
			{"name": "test-admin", "key": accessAdminKey, "role": "admin", "organizations": []string{"*"}}}},
		"logging": map[string]any{"format": "json", "level": "debug"},
	}
	if change != nil {
		change(doc)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "config-cache.json"))
	t.Setenv("LOG_LEVEL", "")
	return writeFile(t, "worker.json", string(data))
}

// inProcessWorker is `audit-worker --config FILE run`, run by the test.
type inProcessWorker struct {
	base   string
	log    *lockedBuffer
	cancel context.CancelFunc
	done   chan error
	exited bool
}

func runInProcess(t *testing.T, cfgPath string) *inProcessWorker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &inProcessWorker{log: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		cmd := newRootCommand()
		cmd.SetArgs([]string{"--config", cfgPath, "run"})
		cmd.SetOut(io.Discard)
		cmd.SetErr(w.log)
		w.done <- cmd.ExecuteContext(ctx)
	}()
	w.base = waitForStart(t, w.log, w.done)
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop shuts the worker down and waits for it.
func (w *inProcessWorker) stop(t *testing.T) {
	t.Helper()
	if w.exited {
		return
	}
	w.exited = true
	w.cancel()
	if err := <-w.done; err != nil {
		t.Errorf("worker: %v", err)
	}
}

// call makes a request with an Authorization header value (none when "").
func (w *inProcessWorker) call(t *testing.T, method, path, authorization, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
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
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func bearerHeader(token string) string { return "Bearer " + token }
