package access_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/sqlite"
)

func openKeys(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func createKey(t *testing.T, s audit.KeyStore, role audit.Role, orgs []string, expires *time.Time) (audit.APIKey, string) {
	t.Helper()
	id, token, hash := audit.NewAPIKeySecret()
	k := audit.APIKey{ID: id, Name: "test " + string(role), Role: role, Organizations: orgs,
		CreatedAt: time.Now().UTC(), ExpiresAt: expires, SecretHash: hash}
	if err := s.CreateAPIKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k, token
}

func TestAuthenticateStoredKeys(t *testing.T) {
	ctx := context.Background()
	store := openKeys(t)
	clk := &clock{now: time.Now()}
	a := access.NewAuthenticator(access.Options{Keys: store, CacheTTL: 2 * time.Second, Now: clk.Now})

	k, token := createKey(t, store, audit.RoleReader, []string{"org-a"}, nil)
	p, err := a.Authenticate(ctx, token)
	if err != nil || p.ID != "key:"+k.ID || p.Role != audit.RoleReader || !p.InScope("org-a") || p.InScope("org-b") {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	for name, bad := range map[string]string{
		"empty": "", "wrong secret": token[:len(token)-1] + "x", "unknown id": "awk_aaaaaaaaaaaaaaaa_" + token[len(token)-43:],
		"garbage": "not a key", "prefix only": "awk_",
	} {
		if _, err := a.Authenticate(ctx, bad); err != access.ErrUnauthorized {
			t.Errorf("%s: err = %v, want ErrUnauthorized", name, err)
		}
	}

	// Revoked elsewhere (another replica): refused once the cache entry is older than its TTL.
	if _, err := store.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, token); err != nil {
		t.Fatalf("within the cache TTL the key is still known: %v", err)
	}
	clk.Add(2 * time.Second)
	if _, err := a.Authenticate(ctx, token); err != access.ErrUnauthorized {
		t.Fatalf("after the TTL a revoked key must be refused, got %v", err)
	}

	// Expired.
	past := time.Now().Add(-time.Second)
	_, expired := createKey(t, store, audit.RoleAdmin, []string{"*"}, &past)
	if _, err := a.Authenticate(ctx, expired); err != access.ErrUnauthorized {
		t.Errorf("expired key: %v", err)
	}
}

func TestRotationOverlap(t *testing.T) {
	ctx := context.Background()
	store := openKeys(t)
	clk := &clock{now: time.Now()}
	a := access.NewAuthenticator(access.Options{Keys: store, Now: clk.Now})
	k, oldToken := createKey(t, store, audit.RoleIngest, []string{"org-a"}, nil)
	newToken, hash := audit.NewAPIKeySecretFor(k.ID)
	if _, err := store.RotateAPIKey(ctx, k.ID, hash, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	a.Forget(k.ID)
	for _, tok := range []string{oldToken, newToken} {
		if _, err := a.Authenticate(ctx, tok); err != nil {
			t.Errorf("within the overlap: %v", err)
		}
	}
	clk.Add(time.Hour + 3*time.Second)
	if _, err := a.Authenticate(ctx, oldToken); err != access.ErrUnauthorized {
		t.Errorf("old secret after the overlap: %v", err)
	}
	if _, err := a.Authenticate(ctx, newToken); err != nil {
		t.Errorf("new secret after the overlap: %v", err)
	}
}

func TestStaticKeys(t *testing.T) {
	a := access.NewAuthenticator(access.Options{})
	a.SetStaticKeys([]access.StaticKey{
		{Name: "apiKeys[0]", Key: "legacy-ingest-key-0123456789", Role: audit.RoleIngest, Organizations: []string{"*"}},
		{Name: "ops", Key: "operator-key-0123456789abcdef", Role: audit.RoleOperator, Organizations: []string{"org-a"}},
	})
	p, err := a.Authenticate(context.Background(), "operator-key-0123456789abcdef")
	if err != nil || p.ID != "config:ops" || p.Role != audit.RoleOperator {
		t.Fatalf("static key = %+v, %v", p, err)
	}
	if p, err := a.Authenticate(context.Background(), "legacy-ingest-key-0123456789"); err != nil || !p.AllOrgs() || p.Role != audit.RoleIngest {
		t.Fatalf("apiKeys entry = %+v, %v", p, err)
	}
	a.SetStaticKeys(nil) // reload without them
	if _, err := a.Authenticate(context.Background(), "operator-key-0123456789abcdef"); err != access.ErrUnauthorized {
		t.Fatalf("removed key still accepted: %v", err)
	}
}

func TestStoreDownIsUnavailableNotAccepted(t *testing.T) {
	store := openKeys(t)
	_, token := createKey(t, store, audit.RoleReader, []string{"org-a"}, nil)
	a := access.NewAuthenticator(access.Options{Keys: store})
	store.Close()
	_, err := a.Authenticate(context.Background(), token)
	if audit.ErrorCode(err) != audit.CodeUnavailable {
		t.Fatalf("store closed: %v, want unavailable", err)
	}
}

func TestLastUsedIsWrittenInTheBackground(t *testing.T) {
	store := openKeys(t)
	k, token := createKey(t, store, audit.RoleReader, []string{"org-a"}, nil)
	a := access.NewAuthenticator(access.Options{Keys: store, TouchInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	if _, err := a.Authenticate(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := store.GetAPIKey(context.Background(), k.ID)
		if got.LastUsedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("last use never written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc": "abc",
		"Basic abc": "", "Bearer": "", "Bearer ": "", "abc": "",
	} {
		got, ok := access.BearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v", header, got, ok)
		}
	}
}
