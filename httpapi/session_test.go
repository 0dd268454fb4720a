package httpapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/telemetry"
)

// Keys of the session tests, one per role, every organisation.
const (
	sessAdminKey    = "session-test-admin-key-0123456789"
	sessReaderKey   = "session-test-reader-key-0123456789"
	sessOperatorKey = "session-test-operator-key-01234567"
	sessIngestKey   = "session-test-ingest-key-0123456789"
)

func sessionAuth() *access.Authenticator {
	a := access.NewAuthenticator(access.Options{})
	var keys []access.StaticKey
	for role, key := range map[audit.Role]string{audit.RoleAdmin: sessAdminKey, audit.RoleReader: sessReaderKey,
		audit.RoleOperator: sessOperatorKey, audit.RoleIngest: sessIngestKey} {
		keys = append(keys, access.StaticKey{Name: string(role), Key: key, Role: role, Organizations: []string{audit.AllOrganizations}})
	}
	a.SetStaticKeys(keys)
	return a
}

// clock is a settable time for the session store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// sessionServer serves the API with the given options completed by sessionAuth
// and an alert store, and closes it with the test.
func sessionServer(t *testing.T, opts Options) (*httptest.Server, *Server) {
	t.Helper()
	if opts.Auth == nil {
		opts.Auth = sessionAuth()
	}
	if opts.Alerts.Store == nil {
		store, _ := teststores.SQLite(t)
		opts.Alerts.Store = store
	}
	api := New(opts)
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		api.EndStreams()
		srv.CloseClientConnections()
		srv.Close()
		api.Close()
	})
	return srv, api
}

type signedIn struct {
	cookie *http.Cookie
	view   sessionView
}

// signInAs posts a credential to POST /console/session.
func signInAs(t *testing.T, base, credential string) (int, signedIn) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"credential": credential})
	resp, err := http.Post(base+"/console/session", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s signedIn
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			s.cookie = c
		}
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&s.view); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, s
}

// do makes a request with the session's cookie and, when csrf is set, that
// CSRF header value.
func (s signedIn) do(t *testing.T, method, url, csrf, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.AddCookie(s.cookie)
	if csrf != "" {
		req.Header.Set(CSRFHeader, csrf)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestSignInRefusesBadInputAndNamesIt(t *testing.T) {
	srv, _ := sessionServer(t, Options{})
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
		status      int
		message     string
	}{
		{"form post", "application/x-www-form-urlencoded", "credential=" + sessAdminKey, 415, "Content-Type"},
		{"not JSON", "application/json", "credential", 400, "body"},
		{"unknown field", "application/json", `{"credential":"x","remember":true}`, 400, "body"},
		{"two objects", "application/json", `{"credential":"x"}{}`, 400, "body"},
		{"no credential", "application/json", `{}`, 400, "credential: required"},
		{"wrong key", "application/json", `{"credential":"not-a-key"}`, 401, "credential"},
		{"ingest key", "application/json", `{"credential":"` + sessIngestKey + `"}`, 403, "ingest key"},
		{"too large", "application/json", `{"credential":"` + strings.Repeat("k", 20<<10) + `"}`, 413, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/console/session", tc.contentType, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Message string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.status || !strings.Contains(e.Error.Message, tc.message) {
				t.Errorf("%d %q, want %d naming %q", resp.StatusCode, e.Error.Message, tc.status, tc.message)
			}
			if len(resp.Cookies()) > 0 {
				t.Errorf("a refused sign-in set cookies: %v", resp.Cookies())
			}
		})
	}
}

func TestSignInSetsAStrictHttpOnlyCookie(t *testing.T) {
	srv, _ := sessionServer(t, Options{})
	code, s := signInAs(t, srv.URL, sessReaderKey)
	if code != http.StatusOK || s.cookie == nil {
		t.Fatalf("sign-in: %d, cookie %v", code, s.cookie)
	}
	c := s.cookie
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) < 43 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over HTTP, 256 random bits", c)
	}
	v := s.view
	if v.Principal.Role != audit.RoleReader || len(v.CSRFToken) < 43 || v.ExpiresAt == nil || v.IdleTimeoutSeconds != 1800 {
		t.Errorf("session view %+v", v)
	}
	if v.CSRFToken == c.Value {
		t.Error("the CSRF token is the cookie's value")
	}

	tlsAPI := New(Options{Auth: sessionAuth()})
	defer tlsAPI.Close()
	tlsSrv := httptest.NewTLSServer(tlsAPI)
	defer tlsSrv.Close()
	resp, err := tlsSrv.Client().Post(tlsSrv.URL+"/console/session", "application/json", strings.NewReader(`{"credential":"`+sessReaderKey+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("over TLS the cookie is %+v, want Secure", cs)
	}

	for _, header := range []string{"X-Forwarded-Proto: https", "Forwarded: for=10.0.0.1;proto=https;by=10.0.0.2"} {
		req, _ := http.NewRequest("POST", srv.URL+"/console/session", strings.NewReader(`{"credential":"`+sessReaderKey+`"}`))
		req.Header.Set("Content-Type", "application/json")
		name, value, _ := strings.Cut(header, ": ")
		req.Header.Set(name, value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure {
			t.Errorf("behind a TLS proxy (%s) the cookie is %+v, want Secure", header, cs)
		}
	}
}

func TestSessionCookieNeedsCSRFTokenToChangeAnything(t *testing.T) {
	srv, api := sessionServer(t, Options{})
	alerts := api.opts.Alerts.Store
	raise := func() string {
		r, err := alerts.RaiseAlert(context.Background(), audit.AlertCondition{Type: audit.AlertSecurity, Severity: audit.SeverityHigh,
			DedupKey: "csrf:" + time.Now().String(), Title: "t", Source: "test", ObservedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return r.Alert.ID
	}
	_, s := signInAs(t, srv.URL, sessOperatorKey)
	for _, tc := range []struct {
		name, method, path, csrf string
		bearer                   bool
		status                   int
	}{
		{"read without token", "GET", "/v1/alerts", "", false, 200},
		{"change without token", "POST", "/v1/alerts/{id}/acknowledge", "", false, 403},
		{"change with a wrong token", "POST", "/v1/alerts/{id}/acknowledge", "not-the-token", false, 403},
		{"change with the token", "POST", "/v1/alerts/{id}/acknowledge", s.view.CSRFToken, false, 200},
		{"sign out without token", "DELETE", "/console/session", "", false, 403},
		{"bearer needs no token", "POST", "/v1/alerts/{id}/acknowledge", "", true, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := strings.Replace(tc.path, "{id}", raise(), 1)
			var resp *http.Response
			if tc.bearer {
				req, _ := http.NewRequest(tc.method, srv.URL+path, strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer "+sessOperatorKey)
				var err error
				if resp, err = http.DefaultClient.Do(req); err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
			} else {
				resp = s.do(t, tc.method, srv.URL+path, tc.csrf, "{}")
			}
			if resp.StatusCode != tc.status {
				b, _ := io.ReadAll(resp.Body)
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.status)
			}
		})
	}
}

func TestSessionEndsWhenIdleAtItsMaximumOrSignedOut(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	srv, _ := sessionServer(t, Options{Console: ConsoleOptions{Now: clk.Now}})
	status := func(s signedIn) int {
		return s.do(t, "GET", srv.URL+"/console/session", "", "").StatusCode
	}

	_, idle := signInAs(t, srv.URL, sessReaderKey)
	clk.advance(29 * time.Minute)
	if code := status(idle); code != 200 {
		t.Fatalf("after 29 idle minutes: %d, want 200", code)
	}
	clk.advance(30 * time.Minute) // 30 minutes since that use
	if code := status(idle); code != 401 {
		t.Errorf("after 30 idle minutes: %d, want 401", code)
	}

	_, busy := signInAs(t, srv.URL, sessReaderKey)
	for elapsed := time.Duration(0); elapsed < 8*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
		clk.advance(20 * time.Minute)
		if code := status(busy); code != 200 {
			t.Fatalf("a session used every 20 minutes ended after %s: %d", elapsed+20*time.Minute, code)
		}
	}
	clk.advance(20 * time.Minute)
	if code := status(busy); code != 401 {
		t.Errorf("a session used all along is still open after 8 hours: %d", code)
	}

	_, out := signInAs(t, srv.URL, sessReaderKey)
	resp := out.do(t, "DELETE", srv.URL+"/console/session", out.view.CSRFToken, "")
	if resp.StatusCode != 200 {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("sign-out sets %+v, want the cookie cleared", cs)
	}
	if code := status(out); code != 401 {
		t.Errorf("after sign-out: %d, want 401", code)
	}
}

func TestSessionsAreBoundedAndPruned(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	srv, _ := sessionServer(t, Options{Console: ConsoleOptions{Now: clk.Now, MaxSessions: 2}})
	for i := range 2 {
		if code, _ := signInAs(t, srv.URL, sessReaderKey); code != 200 {
			t.Fatalf("sign-in %d: %d", i, code)
		}
	}
	if code, _ := signInAs(t, srv.URL, sessReaderKey); code != http.StatusServiceUnavailable {
		t.Errorf("one sign-in more than MaxSessions (2): %d, want 503", code)
	}
	clk.advance(31 * time.Minute) // both expire
	if code, _ := signInAs(t, srv.URL, sessReaderKey); code != 200 {
		t.Errorf("after the others expired: %d, want 200", code)
	}
}

// TestRevokedKeyEndsItsSessionsAndStream revokes a stored key while its
// session has the overview stream open: requests with the cookie are
// refused and the stream ends within the authenticator's cache time.
func TestRevokedKeyEndsItsSessionsAndStream(t *testing.T) {
	for _, kind := range teststores.Both {
		t.Run(kind.Name, func(t *testing.T) {
			store := kind.Open(t)
			keys := store.(audit.KeyStore)
			k, token, err := access.CreateKey(context.Background(), keys,
				access.NewKey{Name: "op", Role: audit.RoleOperator, Organizations: []string{audit.AllOrganizations}}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			auth := access.NewAuthenticator(access.Options{Keys: keys})
			srv, _ := sessionServer(t, Options{Auth: auth, Alerts: AlertOptions{Store: store.(audit.AlertStore)},
				Metrics: streamMetrics(), Console: ConsoleOptions{StreamInterval: 100 * time.Millisecond}})
			_, s := signInAs(t, srv.URL, token)
			stream := openStream(t, s.do(t, "GET", srv.URL+"/v1/stream/overview", "", ""))
			stream.next(t, "overview")

			if _, err := keys.RevokeAPIKey(context.Background(), k.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			revoked := time.Now()
			testenv.Eventually(t, 5*time.Second, "the session refused", func() bool {
				return s.do(t, "GET", srv.URL+"/console/session", "", "").StatusCode == http.StatusUnauthorized
			})
			refused := time.Since(revoked)
			end := stream.until(t, "end")
			if !strings.Contains(end, "no longer valid") {
				t.Errorf("the stream ended with %s", end)
			}
			t.Logf("session refused %s after the revocation; stream ended %s after it", refused.Round(time.Millisecond), time.Since(revoked).Round(time.Millisecond))
			if d := time.Since(revoked); d > 3*time.Second {
				t.Errorf("the stream outlived the revocation by %s", d)
			}
		})
	}
}

// streamMetrics is a dashboard over fresh metrics.
func streamMetrics() MetricsOptions {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{})
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	return MetricsOptions{Exposition: m.Handler(), Dashboard: d, Bottlenecks: d}
}

// sseReader reads Server-Sent Events.
type sseReader struct {
	resp *http.Response
	r    *bufio.Reader
}

func openStream(t *testing.T, resp *http.Response) *sseReader {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &sseReader{resp: resp, r: bufio.NewReader(resp.Body)}
}

// read returns the next event's name and data ("" at the end of the stream).
func (s *sseReader) read() (string, string, error) {
	var event, data string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data, nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// next reads one event and fails unless it is named want.
func (s *sseReader) next(t *testing.T, want string) string {
	t.Helper()
	ev, data, err := s.read()
	if err != nil || ev != want {
		t.Fatalf("stream: got event %q (%v), want %q", ev, err, want)
	}
	return data
}

// until reads events until one named want, and returns its data.
func (s *sseReader) until(t *testing.T, want string) string {
	t.Helper()
	for {
		ev, data, err := s.read()
		if err != nil {
			t.Fatalf("stream ended before an %q event: %v", want, err)
		}
		if ev == want {
			return data
		}
	}
}

func TestOverviewStreamSendsTheSeriesOnceThenOnlyNewSeconds(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{})
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m})
	srv, _ := sessionServer(t, Options{Metrics: MetricsOptions{Dashboard: d},
		Console: ConsoleOptions{Overview: m, StreamInterval: 300 * time.Millisecond}})
	req, _ := http.NewRequest("GET", srv.URL+"/v1/stream/overview", nil)
	req.Header.Set("Authorization", "Bearer "+sessOperatorKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := openStream(t, resp)
	var first overview
	if err := json.Unmarshal([]byte(stream.next(t, "overview")), &first); err != nil {
		t.Fatal(err)
	}
	if first.Series == nil || len(first.Series.Received) != seriesSeconds || first.Totals == nil || first.Latency == nil ||
		first.Breaker == nil || first.Health.Status == "" || first.BreakerHistory == nil {
		t.Fatalf("first message lacks parts: %+v", first)
	}
	total := 0
	for range 4 {
		var o overview
		if err := json.Unmarshal([]byte(stream.next(t, "overview")), &o); err != nil {
			t.Fatal(err)
		}
		if o.Series == nil || len(o.Series.Received) > 2 {
			t.Fatalf("a later message resends %d seconds", len(o.Series.Received))
		}
		total += len(o.Series.Received)
		if o.Series.End-int64(len(o.Series.Received)) > first.Series.End+int64(total) {
			t.Errorf("a second is missing between messages: end %d", o.Series.End)
		}
	}
	if total == 0 {
		t.Error("1.2 s of messages brought no new second")
	}
}

func TestOverviewStreamIsForOperatorsAndChecksItsParameters(t *testing.T) {
	srv, _ := sessionServer(t, Options{Metrics: streamMetrics()})
	for _, tc := range []struct {
		key, query string
		status     int
	}{
		{sessReaderKey, "", 403},
		{sessIngestKey, "", 403},
		{"", "", 401},
		{sessOperatorKey, "?interval=10", 400},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/stream/overview"+tc.query, nil)
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("key %q query %q: %d, want %d", tc.key, tc.query, resp.StatusCode, tc.status)
		}
	}
}

// TestOverviewStreamOutlivesTheReadTimeoutAndEndsOnShutdown runs a server
// with a read timeout far shorter than the stream, as the worker's is.
func TestOverviewStreamOutlivesTheReadTimeoutAndEndsOnShutdown(t *testing.T) {
	api := New(Options{Auth: sessionAuth(), Metrics: streamMetrics(),
		Console: ConsoleOptions{StreamInterval: 200 * time.Millisecond, MaxStreams: 1}})
	srv := httptest.NewUnstartedServer(api)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.RegisterOnShutdown(api.EndStreams)
	srv.Start()
	defer api.Close()
	defer srv.Close()
	open := func() *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/stream/overview", nil)
		req.Header.Set("Authorization", "Bearer "+sessOperatorKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := open()
	defer resp.Body.Close()
	stream := openStream(t, resp)
	start := time.Now()
	for range 6 {
		stream.next(t, "overview")
	}
	if d := time.Since(start); d < 900*time.Millisecond { // the first at once, then 5 intervals of 200 ms
		t.Fatalf("6 messages in %s: the interval is not kept", d)
	}
	second := open()
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable || second.Header.Get("Retry-After") == "" {
		t.Errorf("a stream beyond MaxStreams 1: %d, want 503 with Retry-After", second.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited for the stream: %v", err)
	}
	if !strings.Contains(stream.until(t, "end"), "shutting down") {
		t.Error("the stream did not say why it ended")
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("shutdown took %s with a stream open", d)
	}
}

// oidcIssuer is a local OpenID provider (discovery and keys) and a token
// signer.
func oidcIssuer(t *testing.T) (string, func(claims map[string]any) string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, func(claims map[string]any) string {
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
}

// TestSignInWithAnOIDCTokenEndsWithTheToken signs in with a token from the
// configured issuer: the session is the token's subject, with its role and
// organisations, and it ends when the token expires.
func TestSignInWithAnOIDCTokenEndsWithTheToken(t *testing.T) {
	issuer, sign := oidcIssuer(t)
	o, err := access.NewOIDC(access.OIDCConfig{Issuer: issuer, Audience: "audit-worker", ClockSkew: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := access.NewAuthenticator(access.Options{})
	auth.SetOIDC(o)
	srv, _ := sessionServer(t, Options{Auth: auth})
	now := time.Now()
	expires := time.Unix(now.Add(3*time.Second).Unix(), 0) // exp is in whole seconds
	token := sign(map[string]any{"iss": issuer, "aud": "audit-worker", "sub": "alice", "iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "exp": expires.Unix(),
		"roles": []string{"auditor"}, "organizations": []string{"org-a"}})
	code, s := signInAs(t, srv.URL, token)
	if code != http.StatusOK {
		t.Fatalf("sign in with a token: %d", code)
	}
	if p := s.view.Principal; p.ID != "oidc:alice" || p.Role != audit.RoleAuditor || strings.Join(p.Organizations, ",") != "org-a" {
		t.Errorf("the session's principal is %+v, want oidc:alice, auditor of org-a", p)
	}
	if resp := s.do(t, "GET", srv.URL+"/console/session", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the session: %d", resp.StatusCode)
	}
	testenv.Eventually(t, 10*time.Second, "the session to end with its token", func() bool {
		return s.do(t, "GET", srv.URL+"/console/session", "", "").StatusCode == http.StatusUnauthorized
	})
	if time.Now().Before(expires) {
		t.Errorf("the session ended before its token expired at %s", expires)
	}
}
