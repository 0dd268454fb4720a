package storetest

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// RunKeys runs the KeyStore conformance tests. open must return a fresh, empty
// store for each call, closed by the caller's cleanup.
func RunKeys(t *testing.T, open func(t *testing.T) audit.KeyStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s audit.KeyStore)
	}{
		{"RoundTrip", testKeyRoundTrip},
		{"DuplicateID", testKeyDuplicateID},
		{"NotFound", testKeyNotFound},
		{"ListOldestFirst", testKeyList},
		{"RevokeKeepsFirstTime", testKeyRevoke},
		{"RotateKeepsPreviousForOverlap", testKeyRotate},
		{"RotateRevokedIsConflict", testKeyRotateRevoked},
		{"TouchOnlyMovesForward", testKeyTouch},
		{"ConcurrentTouches", testKeyConcurrentTouches},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// newKey builds a key as `keys create` would, with times at µs precision
// (what both stores keep).
func newKey(name string, role audit.Role, orgs ...string) (audit.APIKey, string) {
	id, token, hash := audit.NewAPIKeySecret()
	created := time.Now().UTC().Truncate(time.Microsecond)
	return audit.APIKey{
		ID: id, Name: name, Role: role, Organizations: orgs, CreatedBy: "storetest",
		CreatedAt: created, SecretHash: hash,
	}, token
}

func createKey(t *testing.T, s audit.KeyStore, k audit.APIKey) {
	t.Helper()
	if err := s.CreateAPIKey(ctxFor(t), k); err != nil {
		t.Fatalf("create key %s: %v", k.ID, err)
	}
}

func getKey(t *testing.T, s audit.KeyStore, id string) audit.APIKey {
	t.Helper()
	k, err := s.GetAPIKey(ctxFor(t), id)
	if err != nil {
		t.Fatalf("get key %s: %v", id, err)
	}
	return k
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func checkKey(t *testing.T, want, got audit.APIKey) {
	t.Helper()
	switch {
	case got.ID != want.ID || got.Name != want.Name || got.Role != want.Role || got.CreatedBy != want.CreatedBy:
		t.Errorf("key = %s/%q/%s/%q, want %s/%q/%s/%q", got.ID, got.Name, got.Role, got.CreatedBy,
			want.ID, want.Name, want.Role, want.CreatedBy)
	case !slices.Equal(got.Organizations, want.Organizations):
		t.Errorf("organizations = %q, want %q", got.Organizations, want.Organizations)
	case !got.CreatedAt.Equal(want.CreatedAt):
		t.Errorf("createdAt = %s, want %s", got.CreatedAt, want.CreatedAt)
	case !sameTime(got.ExpiresAt, want.ExpiresAt) || !sameTime(got.RevokedAt, want.RevokedAt):
		t.Errorf("expiresAt/revokedAt = %v/%v, want %v/%v", got.ExpiresAt, got.RevokedAt, want.ExpiresAt, want.RevokedAt)
	case !bytes.Equal(got.SecretHash, want.SecretHash):
		t.Errorf("secret hash differs")
	}
}

func testKeyRoundTrip(t *testing.T, s audit.KeyStore) {
	k, token := newKey("billing ingest", audit.RoleIngest, "org-a", "org-b")
	expires := k.CreatedAt.Add(90 * 24 * time.Hour)
	k.ExpiresAt = &expires
	createKey(t, s, k)
	got := getKey(t, s, k.ID)
	checkKey(t, k, got)
	if got.LastUsedAt != nil || got.RevokedAt != nil {
		t.Errorf("a new key has lastUsed %v, revoked %v", got.LastUsedAt, got.RevokedAt)
	}
	_, secret, ok := audit.ParseAPIKey(token)
	if !ok || !got.MatchesSecret(secret, time.Now()) {
		t.Errorf("the stored key does not match its own secret")
	}
	if got.MatchesSecret(secret+"x", time.Now()) {
		t.Errorf("the stored key matches another secret")
	}
	all, _ := newKey("all orgs admin", audit.RoleAdmin, audit.AllOrganizations)
	createKey(t, s, all)
	checkKey(t, all, getKey(t, s, all.ID))
}

func testKeyDuplicateID(t *testing.T, s audit.KeyStore) {
	k, _ := newKey("first", audit.RoleReader, "org-a")
	createKey(t, s, k)
	again := k
	again.Name = "second"
	wantCode(t, "create with a used id", s.CreateAPIKey(ctxFor(t), again), audit.CodeConflict)
	checkKey(t, k, getKey(t, s, k.ID))
}

func testKeyNotFound(t *testing.T, s audit.KeyStore) {
	ctx := ctxFor(t)
	_, err := s.GetAPIKey(ctx, "aaaaaaaaaaaaaaaa")
	wantCode(t, "get", err, audit.CodeNotFound)
	_, err = s.RevokeAPIKey(ctx, "aaaaaaaaaaaaaaaa", time.Now())
	wantCode(t, "revoke", err, audit.CodeNotFound)
	_, err = s.RotateAPIKey(ctx, "aaaaaaaaaaaaaaaa", make([]byte, 32), time.Now())
	wantCode(t, "rotate", err, audit.CodeNotFound)
}

func testKeyList(t *testing.T, s audit.KeyStore) {
	var want []string
	for i, name := range []string{"a", "b", "c"} {
		k, _ := newKey(name, audit.RoleReader, "org-a")
		k.CreatedAt = k.CreatedAt.Add(time.Duration(i) * time.Second)
		createKey(t, s, k)
		want = append(want, k.ID)
	}
	keys, err := s.ListAPIKeys(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("list = %v, want %v (oldest first)", got, want)
	}
}

func testKeyRevoke(t *testing.T, s audit.KeyStore) {
	k, _ := newKey("to revoke", audit.RoleOperator, "org-a")
	createKey(t, s, k)
	first := time.Now().UTC().Truncate(time.Microsecond)
	got, err := s.RevokeAPIKey(ctxFor(t), k.ID, first)
	if err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(first) {
		t.Fatalf("revoke = %v, %v", got.RevokedAt, err)
	}
	got, err = s.RevokeAPIKey(ctxFor(t), k.ID, first.Add(time.Hour))
	if err != nil || !got.RevokedAt.Equal(first) {
		t.Fatalf("second revoke moved the time: %v, %v", got.RevokedAt, err)
	}
	revoked := getKey(t, s, k.ID)
	if ok, why := revoked.Usable(first); ok || why != "revoked" {
		t.Errorf("revoked key usable = %v (%s)", ok, why)
	}
}

func testKeyRotate(t *testing.T, s audit.KeyStore) {
	k, oldToken := newKey("to rotate", audit.RoleIngest, "org-a")
	createKey(t, s, k)
	newToken, newHash := audit.NewAPIKeySecretFor(k.ID)
	now := time.Now()
	until := now.Add(24 * time.Hour).UTC().Truncate(time.Microsecond)
	got, err := s.RotateAPIKey(ctxFor(t), k.ID, newHash, until)
	if err != nil {
		t.Fatal(err)
	}
	got = getKey(t, s, k.ID)
	_, oldSecret, _ := audit.ParseAPIKey(oldToken)
	_, newSecret, _ := audit.ParseAPIKey(newToken)
	if !got.MatchesSecret(newSecret, now) || !got.MatchesSecret(oldSecret, now) {
		t.Errorf("within the overlap both secrets must work")
	}
	if got.MatchesSecret(oldSecret, until.Add(time.Second)) || !got.MatchesSecret(newSecret, until.Add(time.Second)) {
		t.Errorf("after the overlap only the new secret may work")
	}
	if got.PreviousExpiresAt == nil || !got.PreviousExpiresAt.Equal(until) {
		t.Errorf("previous secret until %v, want %v", got.PreviousExpiresAt, until)
	}
}

func testKeyRotateRevoked(t *testing.T, s audit.KeyStore) {
	k, _ := newKey("revoked", audit.RoleIngest, "org-a")
	createKey(t, s, k)
	if _, err := s.RevokeAPIKey(ctxFor(t), k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, hash := audit.NewAPIKeySecretFor(k.ID)
	_, err := s.RotateAPIKey(ctxFor(t), k.ID, hash, time.Now().Add(time.Hour))
	wantCode(t, "rotate a revoked key", err, audit.CodeConflict)
}

func testKeyTouch(t *testing.T, s audit.KeyStore) {
	k, _ := newKey("used", audit.RoleIngest, "org-a")
	createKey(t, s, k)
	later := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.TouchAPIKeys(ctxFor(t), map[string]time.Time{k.ID: later, "aaaaaaaaaaaaaaaa": later}); err != nil {
		t.Fatal(err)
	}
	if got := getKey(t, s, k.ID).LastUsedAt; got == nil || !got.Equal(later) {
		t.Fatalf("lastUsed = %v, want %v", got, later)
	}
	if err := s.TouchAPIKeys(ctxFor(t), map[string]time.Time{k.ID: later.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := getKey(t, s, k.ID).LastUsedAt; !got.Equal(later) {
		t.Errorf("an earlier touch moved lastUsed back to %v", got)
	}
}

func testKeyConcurrentTouches(t *testing.T, s audit.KeyStore) {
	k, _ := newKey("busy", audit.RoleIngest, "org-a")
	createKey(t, s, k)
	base := time.Now().UTC().Truncate(time.Microsecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := s.TouchAPIKeys(ctxFor(t), map[string]time.Time{k.ID: base.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := getKey(t, s, k.ID).LastUsedAt; got == nil || !got.Equal(base.Add(7*time.Second)) {
		t.Errorf("lastUsed = %v, want the latest touch %v", got, base.Add(7*time.Second))
	}
}
