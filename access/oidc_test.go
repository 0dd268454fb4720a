package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	audit "github.com/smartlogs/audit-worker"
)

// testIssuer is a local OpenID provider: discovery and JWKS over HTTP, and
// a signing key made for the test.
type testIssuer struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	kid   string
	other *rsa.PrivateKey // a key the issuer does not publish
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	iss := &testIssuer{kid: "test-key-1"}
	var err error
	if iss.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if iss.other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"authorization_endpoint":                iss.srv.URL + "/auth", "token_endpoint": iss.srv.URL + "/token",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &iss.key.PublicKey, KeyID: iss.kid, Algorithm: "RS256", Use: "sig"},
		}})
	})
	return iss
}

func (iss *testIssuer) claims(over map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": iss.srv.URL, "aud": "audit-worker", "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"roles": []string{"auditors"}, "organizations": []string{"org-a"}, "email": "alice@example.org",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
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

// handMade builds a compact JWS with any header and an HMAC-SHA256 (or no)
// signature, for the attacks a library refuses to produce.
func handMade(header, claims map[string]any, hmacKey []byte) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	if hmacKey == nil {
		return signing + "."
	}
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestOIDCTokens(t *testing.T) {
	iss := newTestIssuer(t)
	o, err := NewOIDC(OIDCConfig{
		Issuer: iss.srv.URL, Audience: "audit-worker",
		RoleMapping: map[string]audit.Role{"auditors": audit.RoleAuditor, "ops": audit.RoleOperator},
		ClockSkew:   30 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&iss.key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	valid := sign(t, iss.key, jose.RS256, iss.kid, iss.claims(nil))
	tampered := func() string { // the payload changed after signing
		parts := strings.Split(valid, ".")
		c := iss.claims(map[string]any{"roles": []string{"admin"}})
		payload, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}()
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", valid, true},
		{"tampered payload", tampered, false},
		{"expired", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})), false},
		{"expired within the skew", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"exp": time.Now().Add(-10 * time.Second).Unix()})), true},
		{"no exp", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"exp": nil})), false},
		{"not yet valid", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"nbf": time.Now().Add(10 * time.Minute).Unix()})), false},
		{"wrong audience", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"aud": "another-service"})), false},
		{"wrong issuer", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"iss": "https://evil.example"})), false},
		{"unknown key", sign(t, iss.other, jose.RS256, "not-published", iss.claims(nil)), false},
		{"published kid, other key", sign(t, iss.other, jose.RS256, iss.kid, iss.claims(nil)), false},
		{"ES256 key not published", sign(t, ecKey, jose.ES256, "ec", iss.claims(nil)), false},
		{"alg none", handMade(map[string]any{"alg": "none", "typ": "JWT"}, iss.claims(nil), nil), false},
		{"HS256 signed with the public key", handMade(map[string]any{"alg": "HS256", "typ": "JWT", "kid": iss.kid}, iss.claims(nil), pubPEM), false},
		{"missing role claim", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"roles": nil})), false},
		{"unmapped role value", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"roles": []string{"janitors"}})), false},
		{"missing organizations", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"organizations": nil})), false},
		{"missing subject", sign(t, iss.key, jose.RS256, iss.kid, iss.claims(map[string]any{"sub": nil})), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := o.Verify(context.Background(), tc.token)
			if tc.ok != (err == nil) {
				t.Fatalf("Verify: principal %v, err %v; want ok=%v", p, err, tc.ok)
			}
			if err != nil && err != ErrUnauthorized {
				t.Errorf("a bad token must be ErrUnauthorized, got %v", err)
			}
			if tc.ok && (p.ID != "oidc:alice" || p.Role != audit.RoleAuditor || !p.InScope("org-a") || p.InScope("org-b") || p.Name != "alice@example.org") {
				t.Errorf("principal = %+v", p)
			}
		})
	}
}

func TestOIDCRoleMapping(t *testing.T) {
	o, _ := NewOIDC(OIDCConfig{Issuer: "https://issuer", Audience: "a",
		RoleMapping: map[string]audit.Role{"ops": audit.RoleOperator}}, nil)
	for _, tc := range []struct {
		values []string
		want   audit.Role
	}{
		{[]string{"reader"}, audit.RoleReader},
		{[]string{"ops", "reader"}, audit.RoleOperator},
		{[]string{"unknown", "ingest"}, audit.RoleIngest},
		{[]string{"unknown"}, ""},
	} {
		if got, _ := o.role(tc.values); got != tc.want {
			t.Errorf("role(%v) = %q, want %q", tc.values, got, tc.want)
		}
	}
	if got := stringsClaim(json.RawMessage(`"a b"`)); len(got) != 2 {
		t.Errorf("space-separated claim = %v", got)
	}
}

func TestOIDCIssuerDownIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	o, _ := NewOIDC(OIDCConfig{Issuer: srv.URL, Audience: "a"}, nil)
	_, err := o.Verify(context.Background(), "a.b.c")
	if audit.ErrorCode(err) != audit.CodeUnavailable {
		t.Fatalf("issuer down: %v, want unavailable", err)
	}
}
