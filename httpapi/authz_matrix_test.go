package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	audit "github.com/smartlogs/audit-worker"
)

// authzRule is who may call a route and what they get. It is written here
// from what each role is for, not read from the code's permission table, so
// that a change to either shows up as a failure.
type authzRule struct {
	open  bool         // anyone, without credentials
	roles []audit.Role // the roles that may call it
	// own is the status an allowed caller gets with its own organisation's
	// ids and parameters; foreign with another organisation's: 403 for a
	// list filtered by it, 404 for its single resource (as if missing).
	// foreign is 0 for a route that concerns no organisation in particular.
	own, foreign int
}

var (
	rolesObserve    = []audit.Role{audit.RoleOperator, audit.RoleAdmin}
	rolesReadEvents = []audit.Role{audit.RoleReader, audit.RoleAuditor, audit.RoleAdmin}
	rolesReadAlerts = []audit.Role{audit.RoleReader, audit.RoleAuditor, audit.RoleOperator, audit.RoleAdmin}
	rolesAudit      = []audit.Role{audit.RoleAuditor, audit.RoleAdmin}
	rolesAdmin      = []audit.Role{audit.RoleAdmin}
)

// authzExpected: ingest sends events and nothing else; readers read events
// and alerts; auditors also export and verify; operators run the worker
// (alerts, dead letters, observability) but read no events; admins do
// everything, keys included. Probes and scrapers need no credentials.
var authzExpected = map[string]authzRule{
	"POST /v1/events":                     {roles: []audit.Role{audit.RoleIngest, audit.RoleAdmin}, own: 200, foreign: 422},
	"GET /healthz":                        {open: true, own: 200},
	"GET /health/{component}":             {open: true, own: 200},
	"GET /readyz":                         {open: true, own: 200},
	"GET /metrics":                        {open: true, own: 200},
	"GET /observability/dashboard":        {roles: rolesObserve, own: 200},
	"GET /observability/metrics/enhanced": {roles: rolesObserve, own: 200},
	"GET /observability/bottlenecks":      {roles: rolesObserve, own: 200},
	"GET /observability/traces":           {roles: rolesObserve, own: 200},
	"GET /observability/profiling":        {roles: rolesObserve, own: 200},
	"GET /observability/config":           {roles: rolesObserve, own: 200},
	"GET /debug/pprof/":                   {roles: rolesObserve, own: 200},
	"GET /debug/pprof/cmdline":            {roles: rolesObserve, own: 200},
	"GET /debug/pprof/profile":            {roles: rolesObserve, own: 200},
	"GET /debug/pprof/symbol":             {roles: rolesObserve, own: 200},
	"GET /debug/pprof/trace":              {roles: rolesObserve, own: 200},
	"GET /v1/alerts":                      {roles: rolesReadAlerts, own: 200, foreign: 403},
	"GET /v1/alerts/statistics":           {roles: rolesReadAlerts, own: 200, foreign: 403},
	"GET /v1/alerts/{id}":                 {roles: rolesReadAlerts, own: 200, foreign: 404},
	"POST /v1/alerts/{id}/acknowledge":    {roles: rolesObserve, own: 200, foreign: 404},
	"POST /v1/alerts/{id}/resolve":        {roles: rolesObserve, own: 200, foreign: 404},
	"POST /v1/alerts/{id}/dismiss":        {roles: rolesObserve, own: 200, foreign: 404},
	"GET /v1/keys":                        {roles: rolesAdmin, own: 200},
	"POST /v1/keys":                       {roles: rolesAdmin, own: 201, foreign: 403},
	"DELETE /v1/keys/{id}":                {roles: rolesAdmin, own: 200, foreign: 404},
	"POST /v1/keys/{id}/rotate":           {roles: rolesAdmin, own: 200, foreign: 404},
	"GET /v1/events":                      {roles: rolesReadEvents, own: 200, foreign: 403},
	"GET /v1/events/export":               {roles: rolesAudit, own: 200, foreign: 403},
	"GET /v1/events/{id}":                 {roles: rolesReadEvents, own: 200, foreign: 404},
	"GET /v1/events/{id}/verify":          {roles: rolesAudit, own: 200, foreign: 404},
	"GET /v1/exports/{id}":                {roles: rolesAudit, own: 200, foreign: 404},
	"GET /v1/events/{id}/proof":           {roles: rolesAudit, own: 200, foreign: 404},
	"GET /v1/checkpoints/latest":          {roles: rolesAudit, own: 200},
	"GET /v1/checkpoints/consistency":     {roles: rolesAudit, own: 200},
	"GET /v1/checkpoints/key":             {roles: audit.Roles, own: 200},
	"GET /v1/dead-letters":                {roles: rolesObserve, own: 200},
	"GET /v1/dead-letters/{id}":           {roles: rolesObserve, own: 200, foreign: 404},
	"POST /v1/dead-letters/{id}/redrive":  {roles: rolesObserve, own: 200, foreign: 404},
	"POST /v1/reports/{type}":             {roles: rolesAudit, own: 200, foreign: 403},
	"GET /v1/reports/runs":                {roles: rolesAudit, own: 200},
	"GET /console/":                       {open: true, own: 200},
	// Sign-in is open: it takes the credential in its body. The matrix sends
	// a wrong one there, so every caller gets 401, whatever its header says.
	"POST /console/session":   {open: true, own: 401},
	"GET /console/session":    {roles: audit.Roles, own: 200},
	"DELETE /console/session": {roles: audit.Roles, own: 200},
	"GET /v1/stream/overview": {roles: rolesObserve, own: 200},
}

func routeID(rt Route) string { return rt.Method + " " + rt.Path }

// authzCall builds the request of a route for organisation org. A request
// that changes its target gets a fresh one, so that every caller finds it in
// the same state; reads use the seeded ids.
func (f *authzFixture) authzCall(t *testing.T, route, org string) authzRequest {
	t.Helper()
	seed := f.seeds[org]
	fresh := org == scopeOrg
	get := func(target string) authzRequest { return authzRequest{method: "GET", target: target} }
	switch route {
	case "POST /v1/events":
		return authzRequest{method: "POST", target: "/v1/events", body: string(f.eventOf(org))}
	case "GET /healthz", "GET /readyz", "GET /metrics", "GET /observability/dashboard",
		"GET /observability/metrics/enhanced", "GET /observability/bottlenecks", "GET /observability/profiling",
		"GET /observability/config", "GET /debug/pprof/", "GET /debug/pprof/cmdline", "GET /debug/pprof/symbol",
		"GET /v1/keys", "GET /v1/dead-letters", "GET /v1/reports/runs", "GET /console/", "GET /console/session",
		"GET /v1/checkpoints/latest", "GET /v1/checkpoints/key":
		return get(strings.TrimPrefix(route, "GET "))
	case "POST /console/session":
		return authzRequest{method: "POST", target: "/console/session", body: `{"credential":"awk_aaaaaaaaaaaaaaaa_not-a-secret-of-any-key-at-all-000000000"}`}
	case "DELETE /console/session":
		return authzRequest{method: "DELETE", target: "/console/session"}
	case "GET /v1/stream/overview":
		return authzRequest{method: "GET", target: "/v1/stream/overview", stream: true}
	case "POST /v1/reports/{type}":
		return authzRequest{method: "POST", target: "/v1/reports/general",
			body: fmt.Sprintf(`{"criteria":{"organizationIds":[%q],"from":"2026-01-01T00:00:00Z","to":"2027-01-01T00:00:00Z"}}`, org)}
	case "GET /health/{component}":
		return get("/health/database")
	case "GET /observability/traces":
		return get("/observability/traces?limit=5")
	case "GET /debug/pprof/profile":
		return get("/debug/pprof/profile?seconds=1")
	case "GET /debug/pprof/trace":
		return get("/debug/pprof/trace?seconds=0.05")
	case "GET /v1/alerts", "GET /v1/alerts/statistics", "GET /v1/events":
		return get(strings.TrimPrefix(route, "GET ") + "?organizationId=" + org)
	case "GET /v1/events/export":
		return get("/v1/events/export?format=ndjson&organizationId=" + org)
	case "GET /v1/alerts/{id}":
		return get("/v1/alerts/" + seed.alert)
	case "POST /v1/alerts/{id}/acknowledge", "POST /v1/alerts/{id}/resolve", "POST /v1/alerts/{id}/dismiss":
		id := seed.alert
		if fresh {
			id = f.raiseAlert(t, org)
		}
		return authzRequest{method: "POST", target: strings.Replace(strings.TrimPrefix(route, "POST "), "{id}", id, 1),
			body: `{"note":"authorization matrix"}`}
	case "POST /v1/keys":
		return authzRequest{method: "POST", target: "/v1/keys",
			body: fmt.Sprintf(`{"name":"made by the matrix","role":"reader","organizations":[%q]}`, org)}
	case "DELETE /v1/keys/{id}", "POST /v1/keys/{id}/rotate":
		id := seed.key
		if fresh {
			id = f.newKey(t, org, audit.RoleReader)
		}
		method, path, _ := strings.Cut(route, " ")
		rq := authzRequest{method: method, target: strings.Replace(path, "{id}", id, 1)}
		if method == "POST" {
			rq.body = `{"overlap":"1h"}`
		}
		return rq
	case "GET /v1/checkpoints/consistency":
		return get("/v1/checkpoints/consistency?from=1")
	case "GET /v1/events/{id}", "GET /v1/events/{id}/verify", "GET /v1/events/{id}/proof":
		return get(strings.Replace(strings.TrimPrefix(route, "GET "), "{id}", strconv.FormatInt(seed.event, 10), 1))
	case "GET /v1/exports/{id}":
		return get("/v1/exports/" + seed.export)
	case "GET /v1/dead-letters/{id}":
		return get("/v1/dead-letters/" + strconv.FormatInt(seed.deadLetter, 10))
	case "POST /v1/dead-letters/{id}/redrive":
		id := seed.deadLetter
		if fresh {
			id = f.deadLetter(t, org)
		}
		return authzRequest{method: "POST", target: "/v1/dead-letters/" + strconv.FormatInt(id, 10) + "/redrive"}
	}
	t.Fatalf("no request is known for route %s: add one to authzCall", route)
	return authzRequest{}
}

// authzCaller is one column of the matrix.
type authzCaller struct {
	name  string
	token string
	role  audit.Role // "" for no valid credentials
}

func (f *authzFixture) callers() []authzCaller {
	c := []authzCaller{{name: "none"}, {name: "revoked", token: f.revoked}, {name: "expired", token: f.expired}}
	for _, role := range audit.Roles {
		c = append(c, authzCaller{name: string(role), token: f.tokens[role], role: role})
	}
	return c
}

// want is the status caller should get on route, for its own organisation
// or for the other one.
func (r authzRule) want(c authzCaller, foreign bool) int {
	switch {
	case r.open:
		return r.own
	case c.role == "":
		return http.StatusUnauthorized
	case !slices.Contains(r.roles, c.role):
		return http.StatusForbidden
	case foreign:
		return r.foreign
	}
	return r.own
}

// Every registered route, called without credentials, with a revoked and an
// expired key, and with a key of each role scoped to org-a — on org-a's data
// and on org-b's — answers what the matrix above says, on both stores.
func TestAuthorizationMatrix(t *testing.T) {
	for _, kind := range authzStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			f := newAuthzFixture(t, kind.open(t), authzOptions{})
			routes := f.srv.Routes()
			registered := map[string]bool{}
			for _, rt := range routes {
				registered[routeID(rt)] = true
				if _, ok := authzExpected[routeID(rt)]; !ok {
					t.Errorf("route %s has no rule in authzExpected: every route needs one", routeID(rt))
				}
			}
			for route := range authzExpected {
				if !registered[route] {
					t.Errorf("authzExpected names %s, which the server does not register", route)
				}
			}
			var table strings.Builder
			callers := f.callers()
			fmt.Fprintf(&table, "%-38s", "route")
			for _, c := range callers {
				fmt.Fprintf(&table, " %8.8s", c.name)
			}
			for _, c := range callers[3:] {
				fmt.Fprintf(&table, " %8.8s", "b:"+c.name)
			}
			table.WriteString("\n")
			for _, rt := range routes {
				rule, ok := authzExpected[routeID(rt)]
				if !ok {
					continue
				}
				fmt.Fprintf(&table, "%-38s", routeID(rt))
				for _, c := range callers {
					table.WriteString(f.matrixCell(t, rt, rule, c, false))
				}
				for _, c := range callers[3:] {
					table.WriteString(f.matrixCell(t, rt, rule, c, true))
				}
				table.WriteString("\n")
			}
			t.Logf("status by route and caller (keys scoped to org-a; b: = org-b's ids and parameters; ! = unexpected):\n%s", table.String())
		})
	}
}

// matrixCell makes one call and checks its answer.
func (f *authzFixture) matrixCell(t *testing.T, rt Route, rule authzRule, c authzCaller, foreign bool) string {
	t.Helper()
	if foreign && (rule.open || rule.foreign == 0) {
		return fmt.Sprintf(" %8s", "-") // the route concerns no organisation
	}
	org := scopeOrg
	if foreign {
		org = otherOrg
	}
	rq := f.authzCall(t, routeID(rt), org)
	rq.token = c.token
	rec := f.serve(rq)
	want := rule.want(c, foreign)
	mark := ""
	if rec.Code != want {
		mark = "!"
		t.Errorf("%s %s as %s: %d, want %d: %s", rq.method, rq.target, c.name, rec.Code, want, clip(rec.Body.String(), 300))
	}
	checkAnswer(t, rq, c, rec)
	return fmt.Sprintf(" %8s", strconv.Itoa(rec.Code)+mark)
}

// checkAnswer checks what every answer must hold: a refusal is a JSON error
// (a 401 with a Bearer challenge), and what an org-a key reads holds nothing
// of org-b.
func checkAnswer(t *testing.T, rq authzRequest, c authzCaller, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.String()
	switch {
	case rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer"):
		t.Errorf("%s %s as %s: 401 without a Bearer challenge", rq.method, rq.target, c.name)
	case rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden:
		if _, _, err := decodeErrorBody(rec); err != nil {
			t.Errorf("%s %s as %s: %d without a JSON error (%v): %s", rq.method, rq.target, c.name, rec.Code, err, clip(body, 200))
		}
	case rec.Code < 300 && c.role != "" && strings.Contains(body, otherOrg) && !strings.Contains(rq.body, otherOrg):
		t.Errorf("%s %s as %s (scoped to org-a) answered with org-b's data: %s", rq.method, rq.target, c.name, clip(body, 300))
	}
}
