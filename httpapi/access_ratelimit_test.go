package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// neverRefilled refills one request per 100 s: a test never sees a refill.
func neverRefilled(burst int) access.Rate { return access.Rate{Requests: 0.01, Burst: burst} }

// checkLimited checks a 429: a JSON error and a Retry-After of whole seconds.
func checkLimited(t *testing.T, what string, code int, rq authzRequest, f *authzFixture) {
	t.Helper()
	rec := f.serve(rq)
	if rec.Code != code {
		t.Fatalf("%s: %d, want %d: %s", what, rec.Code, code, rec.Body)
	}
	if code != http.StatusTooManyRequests {
		return
	}
	if errCode, _, err := decodeErrorBody(rec); err != nil || errCode != "rate_limited" {
		t.Errorf("%s: error %q (%v), want rate_limited", what, errCode, err)
	}
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q, want a number of seconds >= 1", what, rec.Header().Get("Retry-After"))
	}
}

// A principal over its own limit gets 429 with Retry-After; another
// principal of the same role, and another role, are not slowed by it.
func TestPrincipalRateLimit(t *testing.T) {
	lim := access.NewLimiter(access.LimitConfig{
		PerPrincipal: map[audit.Role]access.Rate{audit.RoleReader: neverRefilled(2), audit.RoleAuditor: neverRefilled(2)},
		PerRole:      map[audit.Role]access.Rate{}, FailedAuthPerAddress: neverRefilled(100)})
	f := newAuthzFixture(t, authzStoreKinds[0].open(t), authzOptions{limits: lim})
	_, other, err := access.CreateKey(context.Background(), f.db.store, access.NewKey{Name: "second reader",
		Role: audit.RoleReader, Organizations: []string{scopeOrg}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	search := authzRequest{method: "GET", target: "/v1/events", token: f.tokens[audit.RoleReader]}
	checkLimited(t, "reader, 1st", 200, search, f)
	checkLimited(t, "reader, 2nd", 200, search, f)
	checkLimited(t, "reader, 3rd (over its burst of 2)", 429, search, f)
	search.token = other
	checkLimited(t, "another reader", 200, search, f)
	search.token = f.tokens[audit.RoleAuditor]
	checkLimited(t, "an auditor", 200, search, f)
}

// The limit of a role holds for all its principals together.
func TestRoleRateLimit(t *testing.T) {
	lim := access.NewLimiter(access.LimitConfig{PerPrincipal: map[audit.Role]access.Rate{},
		PerRole: map[audit.Role]access.Rate{audit.RoleReader: neverRefilled(2)}, FailedAuthPerAddress: neverRefilled(100)})
	f := newAuthzFixture(t, authzStoreKinds[0].open(t), authzOptions{limits: lim})
	_, other, err := access.CreateKey(context.Background(), f.db.store, access.NewKey{Name: "second reader",
		Role: audit.RoleReader, Organizations: []string{scopeOrg}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first := authzRequest{method: "GET", target: "/v1/alerts", token: f.tokens[audit.RoleReader]}
	second := first
	second.token = other
	checkLimited(t, "reader 1", 200, first, f)
	checkLimited(t, "reader 2", 200, second, f)
	checkLimited(t, "reader 1 again: the role's burst is spent", 429, first, f)
	checkLimited(t, "reader 2 again", 429, second, f)
	operator := first
	operator.token = f.tokens[audit.RoleOperator]
	checkLimited(t, "an operator", 200, operator, f)
}

// Failed authentications from one address are refused with 429 once its
// burst is spent — even with a valid key, before the key is checked — while
// another address, and the open routes, are unaffected.
func TestFailedAuthenticationsPerAddress(t *testing.T) {
	lim := access.NewLimiter(access.LimitConfig{PerPrincipal: map[audit.Role]access.Rate{},
		PerRole: map[audit.Role]access.Rate{}, FailedAuthPerAddress: neverRefilled(3)})
	f := newAuthzFixture(t, authzStoreKinds[0].open(t), authzOptions{limits: lim})
	wrong, valid := f.revoked, f.tokens[audit.RoleReader]
	req := func(remote, token string) authzRequest {
		return authzRequest{method: "GET", target: "/v1/events", token: token, remote: remote}
	}
	const guesser, bystander = "198.51.100.7:40000", "203.0.113.9:40000"
	for i := range 3 {
		checkLimited(t, "failed attempt "+strconv.Itoa(i+1), 401, req(guesser, wrong), f)
	}
	checkLimited(t, "4th failed attempt", 429, req(guesser, wrong), f)
	checkLimited(t, "a valid key from the blocked address", 429, req(guesser, valid), f)
	checkLimited(t, "no key from the blocked address", 429, req(guesser, ""), f)
	checkLimited(t, "the same address as IPv4-mapped IPv6", 429, req("[::ffff:198.51.100.7]:40001", valid), f)
	checkLimited(t, "a valid key from another address", 200, req(bystander, valid), f)
	checkLimited(t, "a wrong key from another address", 401, req(bystander, wrong), f)
	probe := f.serve(authzRequest{method: "GET", target: "/healthz", remote: guesser})
	if probe.Code != http.StatusOK {
		t.Errorf("a probe from the blocked address: %d, want 200 (open routes take no credentials)", probe.Code)
	}
}

// Health details tell a valid key from a wrong one: guesses made there count
// against the address too, and a blocked address gets only the summary.
func TestFailedAuthenticationsOnHealthRoutes(t *testing.T) {
	lim := access.NewLimiter(access.LimitConfig{PerPrincipal: map[audit.Role]access.Rate{},
		PerRole: map[audit.Role]access.Rate{}, FailedAuthPerAddress: neverRefilled(3)})
	f := newAuthzFixture(t, authzStoreKinds[0].open(t), authzOptions{limits: lim})
	const guesser = "198.51.100.8:40000"
	operator := f.tokens[audit.RoleOperator]
	detailed := func(token, remote string) bool {
		rec := f.serve(authzRequest{method: "GET", target: "/health/database", token: token, remote: remote})
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /health/database: %d %s", rec.Code, rec.Body)
		}
		return strings.Contains(rec.Body.String(), `"message"`) || strings.Contains(rec.Body.String(), `"responseTime"`)
	}
	if !detailed(operator, guesser) || detailed("", guesser) {
		t.Fatal("an operator's key must show the details, no key only the status")
	}
	for range 3 {
		if detailed(f.revoked, guesser) {
			t.Fatal("a revoked key shows health details")
		}
	}
	checkLimited(t, "a protected route after 3 guesses on /health", 429,
		authzRequest{method: "GET", target: "/v1/events", token: f.tokens[audit.RoleReader], remote: guesser}, f)
	if detailed(operator, guesser) {
		t.Error("a blocked address still learns that a key is valid from the health details")
	}
	if !detailed(operator, "203.0.113.10:40000") {
		t.Error("another address no longer sees the details with a valid key")
	}
}
