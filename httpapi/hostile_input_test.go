package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/smartlogs/audit-worker/pipeline"
)

// hostileParam is a query parameter a route knows.
type hostileParam struct {
	name string
	// free: any text is a valid value (a filter on a text column), so an SQL
	// string is a search that finds nothing; otherwise the value has a form
	// (a number, a time, one of a few words) and anything else is refused.
	free bool
	// valid is a value the route takes, for the repetition case; "" skips it.
	valid string
	// list: the parameter may be repeated (a list of values).
	list bool
}

// hostileKind says what a route's refusals look like.
type hostileKind int

const (
	// strictRoute refuses unknown and repeated parameters with a JSON error
	// naming them.
	strictRoute hostileKind = iota
	// probeRoute is open to probes and scrapers, which may add parameters of
	// their own: it ignores parameters, and must never fail on them.
	probeRoute
	// pprofRoute is net/http/pprof's, with its own parameters and plain-text
	// answers: it must only never fail (its profile parameters are not
	// tried: a malformed seconds makes pprof profile for its default 30 s).
	pprofRoute
)

type hostileRoute struct {
	kind   hostileKind
	params []hostileParam
	// noun is what a message about the path's id names ("id" always does).
	noun string
	// body is a valid JSON body, sent with the parameter cases (which must
	// be refused before it is acted on); "" keeps authzCall's.
	body string
}

var (
	hostileTimeParams  = []hostileParam{{name: "since", valid: "2020-01-01T00:00:00Z"}, {name: "until", valid: "2100-01-01T00:00:00Z"}}
	hostileEventParams = []hostileParam{{name: "organizationId", free: true, valid: scopeOrg, list: true},
		{name: "principalId", free: true, valid: "u-1"}, {name: "action", free: true, valid: "auth.login"},
		{name: "targetResourceType", free: true, valid: "Patient"}, {name: "targetResourceId", free: true, valid: "p-1"},
		{name: "correlationId", free: true, valid: "c-1"}, {name: "sessionId", free: true, valid: "s-1"},
		{name: "ipAddress", free: true, valid: "10.0.0.1"},
		{name: "status", valid: "success"}, {name: "dataClassification", valid: "PHI"}, {name: "order", valid: "asc"}}
	hostileAlertParams = []hostileParam{{name: "status", valid: "active", list: true}, {name: "severity", valid: "HIGH", list: true},
		{name: "type", valid: "SECURITY", list: true}, {name: "organizationId", free: true, valid: scopeOrg}}
)

func paramGroups(groups ...[]hostileParam) []hostileParam {
	var out []hostileParam
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// hostileRoutes is what the test knows of each route's input. A route
// missing here fails the test.
var hostileRoutes = map[string]hostileRoute{
	"POST /v1/events":                     {}, // garbage bodies: see ingestBodies
	"GET /healthz":                        {kind: probeRoute},
	"GET /health/{component}":             {kind: probeRoute, noun: "component"},
	"GET /readyz":                         {kind: probeRoute},
	"GET /metrics":                        {kind: probeRoute},
	"GET /observability/dashboard":        {},
	"GET /observability/metrics/enhanced": {params: []hostileParam{{name: "format", valid: "json"}}},
	"GET /observability/bottlenecks":      {},
	"GET /observability/traces": {params: []hostileParam{{name: "traceId", valid: "4bf92f3577b34da6a3ce929d0e0e4736"},
		{name: "limit", valid: "5"}}},
	"GET /observability/profiling":     {},
	"GET /observability/config":        {},
	"GET /debug/pprof/":                {kind: pprofRoute},
	"GET /debug/pprof/cmdline":         {kind: pprofRoute},
	"GET /debug/pprof/profile":         {kind: pprofRoute},
	"GET /debug/pprof/symbol":          {kind: pprofRoute},
	"GET /debug/pprof/trace":           {kind: pprofRoute},
	"GET /v1/alerts":                   {params: paramGroups(hostileAlertParams, hostileTimeParams, []hostileParam{{name: "limit", valid: "10"}, {name: "cursor"}})},
	"GET /v1/alerts/statistics":        {params: paramGroups(hostileAlertParams, hostileTimeParams)},
	"GET /v1/alerts/{id}":              {noun: "alert"},
	"POST /v1/alerts/{id}/acknowledge": {noun: "alert", body: `{"note":"n"}`},
	"POST /v1/alerts/{id}/resolve":     {noun: "alert", body: `{"note":"n"}`},
	"POST /v1/alerts/{id}/dismiss":     {noun: "alert", body: `{"note":"n"}`},
	"GET /v1/keys":                     {},
	"POST /v1/keys":                    {body: `{"name":"n","role":"reader","organizations":["org-a"]}`},
	"DELETE /v1/keys/{id}":             {noun: "key"},
	"POST /v1/keys/{id}/rotate":        {noun: "key", body: `{"overlap":"1h"}`},
	"GET /v1/events":                   {params: paramGroups(hostileEventParams, hostileTimeParams, []hostileParam{{name: "limit", valid: "10"}, {name: "cursor"}})},
	"GET /v1/events/export": {params: paramGroups(hostileEventParams, hostileTimeParams,
		[]hostileParam{{name: "format", valid: "csv"}, {name: "gzip", valid: "false"}})},
	"GET /v1/events/{id}":                {noun: "event"},
	"GET /v1/events/{id}/verify":         {noun: "event"},
	"GET /v1/exports/{id}":               {noun: "export"},
	"GET /v1/events/{id}/proof":          {noun: "event", params: []hostileParam{{name: "size", valid: "2"}}},
	"GET /v1/checkpoints/latest":         {},
	"GET /v1/checkpoints/key":            {},
	"GET /v1/checkpoints/consistency":    {params: []hostileParam{{name: "from", valid: "1"}, {name: "to", valid: "2"}}},
	"GET /v1/dead-letters":               {params: []hostileParam{{name: "reason", free: true, valid: "validation_failed"}, {name: "limit", valid: "10"}, {name: "after", valid: "0"}}},
	"GET /v1/dead-letters/{id}":          {noun: "dead letter"},
	"POST /v1/dead-letters/{id}/redrive": {noun: "dead letter"},
	"POST /v1/reports/{type}": {noun: "type",
		body: `{"criteria":{"organizationIds":["org-a"],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}}`},
	"GET /v1/reports/runs":    {params: []hostileParam{{name: "schedule", free: true, valid: "monthly"}, {name: "limit", valid: "10"}, {name: "after", valid: "0"}}},
	"GET /console/":           {kind: probeRoute}, // static assets: parameters are ignored, as by any file server
	"POST /console/session":   {body: `{"credential":""}`},
	"GET /console/session":    {},
	"DELETE /console/session": {},
	"GET /v1/stream/overview": {},
}

// hostileValues are tried in every parameter and path segment.
var hostileValues = []struct {
	name, value string
	// formless: a valid value of a free text parameter (it finds nothing).
	formless bool
}{
	{"sql quote", `' OR '1'='1`, true},
	{"sql statement", `1; DROP TABLE audit_log--`, true},
	{"percent-encoded NUL as text", `%00`, true},
	{"NUL", "\x00", false},
	{"10 KB", strings.Repeat("A", 10<<10), false},
	{"invalid UTF-8", "ok\xff\xfe", false},
}

// garbageBodies are sent to every route that takes a JSON body; want names
// what the refusal's message must mention.
var garbageBodies = []struct{ name, body, want string }{
	{"not JSON", `not json at all`, "body"},
	{"cut short", `{"note":`, "body"},
	{"array", `[1,2]`, "body"},
	{"null", `null`, "body"},
	{"string", `"text"`, "body"},
	{"number", `42`, "body"},
	{"unknown field", `{"dropTable":"audit_log"}`, "dropTable"},
	{"two objects", `{} {}`, "body"},
	{"invalid UTF-8", "{\"note\":\"\xff\xfe\"}", "body"},
	{"10 KB of garbage", strings.Repeat("\x01{[", 10<<10/3), "body"},
}

// Every route, every parameter it knows and every path segment, given SQL,
// NUL characters, 10 KB values, invalid UTF-8, unknown and repeated
// parameters and garbage bodies: a 4xx whose JSON error names the
// parameter, or (for a free text filter) a search that finds nothing —
// never a 5xx, and nothing changes in the store, on both stores.
func TestHostileInput(t *testing.T) {
	for _, kind := range authzStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			f := newAuthzFixture(t, kind.open(t), authzOptions{records: true})
			bases := map[string]authzRequest{}
			for _, rt := range f.srv.Routes() {
				if _, ok := hostileRoutes[routeID(rt)]; !ok {
					t.Errorf("route %s is missing from hostileRoutes: every route is tried", routeID(rt))
					continue
				}
				bases[routeID(rt)] = f.authzCall(t, routeID(rt), scopeOrg)
			}
			before := f.counts(t)
			ingestRefused, sent := int64(0), 0
			for _, rt := range f.srv.Routes() {
				hr, ok := hostileRoutes[routeID(rt)]
				if !ok {
					continue
				}
				h := hostileCase{f: f, t: t, rt: rt, hr: hr, base: bases[routeID(rt)], sent: &sent}
				h.parameters()
				h.pathSegments()
				if rt.Path == "/v1/events" {
					ingestRefused += h.ingestBodies()
				} else {
					h.bodies()
				}
			}
			f.stopRecords()
			after := f.counts(t)
			want := before
			want.deadLetters += ingestRefused
			want.accessRecords = after.accessRecords
			if after != want {
				t.Errorf("the store changed: before %+v (+%d dead letters of refused ingest), after %+v", before, ingestRefused, after)
			}
			if n := f.records.Lost(); n != 0 {
				t.Errorf("%d access records lost", n)
			}
			if strings.Contains(f.log.String(), "level=ERROR") {
				t.Errorf("the server logged errors:\n%s", f.log.String())
			}
			t.Logf("%d hostile requests; store before and after: %+v; access records %d -> %d, none lost",
				sent, before, before.accessRecords, after.accessRecords)
		})
	}
}

// hostileCase tries the hostile inputs on one route.
type hostileCase struct {
	f    *authzFixture
	t    *testing.T
	rt   Route
	hr   hostileRoute
	base authzRequest
	sent *int // requests made, for the log
}

// request is the route's valid request with query q (and its path, body).
func (h *hostileCase) request(q string) authzRequest {
	rq := h.base
	path, _, _ := strings.Cut(rq.target, "?")
	rq.target = path
	if q != "" {
		rq.target += "?" + q
	}
	rq.token = h.f.admin
	if h.hr.body != "" {
		rq.body = h.hr.body
	}
	return rq
}

// expectation is what a strict route must answer a request.
type expectation int

const (
	wantRefusal          expectation = iota // a 4xx whose message names the parameter
	wantRefusalOrNothing                    // that, or a 2xx that found nothing
	wantSuccess                             // a 2xx
)

// send makes the request and checks the answer against want; name must
// appear in a refusal's message. Probe routes must only never fail, pprof's
// never with a 5xx.
func (h *hostileCase) send(what string, rq authzRequest, name string, want expectation) *httptest.ResponseRecorder {
	h.t.Helper()
	*h.sent++
	rec := h.f.serve(rq)
	where := rq.method + " " + clip(rq.target, 120) + " (" + what + ")"
	body := rec.Body.String()
	switch {
	case rec.Code >= 500:
		h.t.Errorf("%s: %d: %s", where, rec.Code, clip(body, 300))
	case h.hr.kind == pprofRoute:
	case rec.Code >= 400 && want == wantSuccess && h.hr.kind == strictRoute:
		h.t.Errorf("%s: %d, want a 2xx: %s", where, rec.Code, clip(body, 300))
	case rec.Code >= 400:
		_, msg, err := decodeErrorBody(rec)
		if err != nil {
			h.t.Errorf("%s: %d without a JSON error (%v): %s", where, rec.Code, err, clip(body, 200))
		} else if name != "" && !strings.Contains(strings.ToLower(msg), strings.ToLower(name)) {
			h.t.Errorf("%s: %d, the message does not name %q: %s", where, rec.Code, name, clip(msg, 300))
		}
	case h.hr.kind == probeRoute || want == wantSuccess:
	case want == wantRefusal:
		h.t.Errorf("%s: %d, want a 4xx naming %q: %s", where, rec.Code, name, clip(body, 200))
	case strings.Contains(body, scopeOrg) || strings.Contains(body, otherOrg):
		h.t.Errorf("%s: %d and found data: the value widened the search: %s", where, rec.Code, clip(body, 300))
	}
	return rec
}

// parameters tries every known parameter with every hostile value, an
// unknown parameter, and each single-valued parameter given twice.
func (h *hostileCase) parameters() {
	if h.hr.kind == pprofRoute {
		return
	}
	for _, p := range h.hr.params {
		for _, v := range hostileValues {
			want := wantRefusal
			if p.free && v.formless {
				want = wantRefusalOrNothing
			}
			h.send(p.name+" = "+v.name, h.request(url.Values{p.name: {v.value}}.Encode()), p.name, want)
		}
		if p.valid != "" {
			want := wantRefusal
			if p.list {
				want = wantSuccess
			}
			h.send(p.name+" twice", h.request(url.Values{p.name: {p.valid, p.valid}}.Encode()), p.name, want)
		}
	}
	for _, name := range []string{"bogus", "organisationId", "limit[]"} {
		h.send("unknown parameter", h.request(url.Values{name: {"1"}}.Encode()), name, wantRefusal)
	}
}

// pathSegments puts every hostile value in the route's path parameter.
func (h *hostileCase) pathSegments() {
	name, ok := pathParamName(h.rt.Path)
	if !ok && h.rt.Path != pprofPath {
		return
	}
	for _, v := range hostileValues {
		rq := h.request("")
		if ok {
			rq.target = strings.Replace(h.rt.Path, "{"+name+"}", url.PathEscape(v.value), 1)
		} else {
			rq.target = pprofPath + url.PathEscape(v.value)
		}
		rec := h.send("path "+v.name, rq, "", wantRefusal)
		if h.hr.kind == pprofRoute || rec.Code >= 500 || rec.Code < 400 {
			continue
		}
		if _, msg, err := decodeErrorBody(rec); err == nil {
			if m := strings.ToLower(msg); !strings.Contains(m, name) && !strings.Contains(m, h.hr.noun) {
				h.t.Errorf("%s %s: %d, the message names neither %q nor %q: %s", rq.method, clip(rq.target, 80), rec.Code, name, h.hr.noun, clip(msg, 200))
			}
		}
	}
}

func pathParamName(path string) (string, bool) {
	_, rest, ok := strings.Cut(path, "{")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "}")
	return name, true
}

// bodies sends garbage to a route that takes a JSON body, or any body to a
// POST route that takes none.
func (h *hostileCase) bodies() {
	if h.rt.Method != "POST" {
		return
	}
	for _, b := range garbageBodies {
		rq := h.request("")
		rq.body = b.body
		h.send("body "+b.name, rq, b.want, wantRefusal)
	}
}

// ingestBodies sends garbage events: ingest keeps whatever it cannot store
// as a dead letter, so it answers each event "rejected" (200, or 422 for a
// body of one event) unless the body cannot be split into events at all
// (400). It returns how many dead letters the garbage made.
func (h *hostileCase) ingestBodies() int64 {
	made := int64(0)
	for _, b := range append(garbageBodies, struct{ name, body, want string }{"empty", "", "body"}) {
		rq := h.request("")
		rq.body = b.body
		*h.sent++
		rec := h.f.serve(rq)
		where := "POST /v1/events (body " + b.name + ")"
		if rec.Code == http.StatusBadRequest {
			if _, msg, err := decodeErrorBody(rec); err != nil || !strings.Contains(msg, "body") {
				h.t.Errorf("%s: 400 without a JSON error naming the body (%v): %s", where, err, rec.Body.String())
			}
			continue
		}
		var resp ingestResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || (rec.Code != 200 && rec.Code != 422) {
			h.t.Errorf("%s: %d (%v): %s", where, rec.Code, err, clip(rec.Body.String(), 300))
			continue
		}
		for _, o := range resp.Results {
			if o.Status != pipeline.StatusRejected || o.Reason == "" || o.Message == "" {
				h.t.Errorf("%s: result %+v, want rejected with a reason", where, o)
			}
		}
		if resp.Stored+resp.Duplicates != 0 {
			h.t.Errorf("%s: %d stored, %d duplicates: garbage became events", where, resp.Stored, resp.Duplicates)
		}
		made += int64(resp.Rejected)
	}
	return made
}
