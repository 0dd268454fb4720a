package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// queryReader is an audit.EventReader that keeps the last query and answers
// it with a page of events inside its bounds, so that searches with a small
// limit get a next cursor.
type queryReader struct {
	last audit.EventQuery
}

func (r *queryReader) SearchEvents(_ context.Context, q audit.EventQuery) ([]audit.StoredEvent, error) {
	r.last = q
	if q.Limit > 4 || q.After != nil {
		return nil, nil
	}
	out := make([]audit.StoredEvent, q.Limit)
	for i := range out {
		out[i] = audit.StoredEvent{Seq: int64(i + 1), Record: audit.Record{Event: audit.Event{Time: q.Since.Add(time.Duration(i) * time.Microsecond),
			Timestamp: q.Since.Format(time.RFC3339Nano), Action: "auth.login", Status: audit.StatusSuccess, OrganizationID: "org-a"}}}
	}
	return out, nil
}

func (r *queryReader) GetEventBySeq(context.Context, int64) (audit.StoredEvent, error) {
	return audit.StoredEvent{}, audit.Errorf(audit.CodeNotFound, "no such event")
}

type fixedSecret struct{}

func (fixedSecret) Secret(context.Context, string, int) ([]byte, error) { return fuzzCursorKey, nil }

// fuzzPrincipal is the caller of the query fuzz targets: a reader of two
// organisations, without access to the access log.
var fuzzPrincipal = audit.Principal{ID: "fuzz", Role: audit.RoleReader, Organizations: []string{"org-a", "org-b"}}

func serveAs(h http.HandlerFunc, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/", nil)
	req.URL.RawQuery = target
	req = req.WithContext(context.WithValue(req.Context(), principalKey{}, fuzzPrincipal))
	rec := httptest.NewRecorder()
	h(rec, req)
	return rec
}

// namesAParameter reports whether a refusal's message names a parameter of
// q or of the route.
func namesAParameter(msg string, q url.Values, known []string) bool {
	for name := range q {
		if strings.Contains(msg, clip(name, 64)) {
			return true
		}
	}
	return slices.ContainsFunc(known, func(name string) bool { return strings.Contains(msg, name) })
}

var eventQuerySeeds = []string{"", "organizationId=org-a&action=auth.*&status=success&limit=2",
	"since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z&order=asc&limit=3&dataClassification=PHI",
	"until=0000-01-01T00:00:00Z", "since=9999-12-31T23:59:59.999999999-23:59", "organizationId=org-c",
	"action=a*b*", "limit=0", "limit=1&limit=2", "status=nope", "order=sideways", "bogus=1", "cursor=AAAA",
	"format=csv&gzip=true", "format=xml", "ipAddress=%00", "sessionId=%FF"}

// FuzzEventsQuery sends any query string to GET /v1/events (and, with
// export, GET /v1/events/export) over a reader that answers with a page of
// events. Never a 5xx; a 4xx is a JSON error naming a parameter; a search
// that runs stays inside the caller's organisations and hides the access
// log, keeps its page size within bounds and its range non-empty, and the
// next cursor it returns continues the same search.
func FuzzEventsQuery(f *testing.F) {
	for _, s := range eventQuerySeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	reader := &queryReader{}
	s := New(Options{Logger: slog.New(slog.DiscardHandler),
		Events: EventOptions{Reader: reader, Secrets: fixedSecret{}}})
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, raw string, export bool) {
		handler, known := s.searchEvents, searchKnown
		if export {
			handler, known = s.exportEvents, append([]string{"format", "gzip"}, searchParams...)
		}
		reader.last = audit.EventQuery{}
		rec := serveAs(handler, raw)
		q, _ := url.ParseQuery(raw)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%q: %d: %s", raw, rec.Code, rec.Body.String())
		case rec.Code >= 400:
			_, msg, err := decodeErrorBody(rec)
			if err != nil || !namesAParameter(msg, q, known) {
				t.Fatalf("%q: %d, the error names no parameter (%v): %s", raw, rec.Code, err, rec.Body.String())
			}
			return
		case rec.Code != http.StatusOK:
			t.Fatalf("%q: %d", raw, rec.Code)
		}
		eq := reader.last
		checkRanQuery(t, raw, eq, export)
		if export {
			return
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatalf("%q: the answer is not JSON: %v", raw, err)
		}
		if page.NextCursor == "" {
			return
		}
		q.Set("cursor", page.NextCursor)
		next := serveAs(s.searchEvents, q.Encode())
		if next.Code != http.StatusOK {
			t.Fatalf("%q: the next page's cursor is refused: %d %s", raw, next.Code, next.Body.String())
		}
		cont := reader.last
		if cont.After == nil || cont.Order != eq.Order || !cont.Since.Equal(eq.Since) || !cont.Until.Equal(eq.Until) {
			t.Fatalf("%q: the next page is another search: %+v after %+v", raw, cont, eq)
		}
		last := eq.Since.Add(time.Duration(eq.Limit-2) * time.Microsecond)
		if !cont.After.Time.Equal(last) || cont.After.Seq != int64(eq.Limit-1) {
			t.Fatalf("%q: the next page starts after %+v, want the last event (%v, %d)", raw, *cont.After, last, eq.Limit-1)
		}
	})
}

// checkRanQuery checks a query the handler ran against the rules of a search.
func checkRanQuery(t *testing.T, raw string, eq audit.EventQuery, export bool) {
	t.Helper()
	if !export && (eq.Limit < 2 || eq.Limit > maxPage+1) {
		t.Fatalf("%q: ran with limit %d", raw, eq.Limit)
	}
	if len(eq.Organizations) == 0 {
		t.Fatalf("%q: ran over every organisation for a caller scoped to %v", raw, fuzzPrincipal.Organizations)
	}
	for _, o := range eq.Organizations {
		if !slices.Contains(fuzzPrincipal.Organizations, o) {
			t.Fatalf("%q: ran over organisation %q, outside the caller's scope", raw, o)
		}
	}
	if !slices.Equal(eq.ExcludeActionPrefixes, accessActionPrefixes) {
		t.Fatalf("%q: ran without hiding the access log from a reader: %v", raw, eq.ExcludeActionPrefixes)
	}
	if eq.Since.IsZero() || (!eq.Until.IsZero() && !eq.Until.After(eq.Since)) {
		t.Fatalf("%q: ran over [%v, %v)", raw, eq.Since, eq.Until)
	}
	switch eq.Status {
	case "", audit.StatusAttempt, audit.StatusSuccess, audit.StatusFailure:
	default:
		t.Fatalf("%q: ran with status %q", raw, eq.Status)
	}
	if eq.Order != audit.OrderAsc && eq.Order != audit.OrderDesc {
		t.Fatalf("%q: ran with order %q", raw, eq.Order)
	}
}

// FuzzAlertFilter holds parseAlertFilter (GET /v1/alerts and its
// statistics) to its contract: an error names its parameter, and a filter
// it returns is one the stores take (Normalize passes, text is storable, the
// cursor decodes, the page size is within bounds).
func FuzzAlertFilter(f *testing.F) {
	for _, s := range []string{"", "status=active,acknowledged&severity=high&type=security&limit=10",
		"since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z&organizationId=org-a",
		"cursor=" + audit.AlertCursor(audit.Alert{ID: "alt_1", FirstSeen: fuzzNow}), "cursor=MHwA", "limit=1001",
		"until=0001-01-01T00:00:00Z", "status=bogus", "organizationId=%00"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	known := []string{"status", "severity", "type", "organizationId", "since", "until", "limit", "cursor"}
	f.Fuzz(func(t *testing.T, raw string, paging bool) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // net/http drops a malformed pair the same way
		}
		af, _, err := parseAlertFilter(q, paging)
		if err != nil {
			if !namesAParameter(err.Error(), q, known) {
				t.Fatalf("%q: refusal %q names no parameter", raw, err)
			}
			return
		}
		n, err := af.Normalize()
		if err != nil {
			t.Fatalf("%q: accepted a filter the stores refuse: %v", raw, err)
		}
		if n.Limit < 1 || n.Limit > audit.AlertListMax {
			t.Fatalf("%q: page of %d alerts", raw, n.Limit)
		}
		if checkText("organizationId", af.OrganizationID) != nil {
			t.Fatalf("%q: organizationId %q cannot be stored", raw, af.OrganizationID)
		}
		if af.After != "" {
			if _, _, err := audit.DecodeAlertCursor(af.After); err != nil {
				t.Fatalf("%q: accepted cursor %q: %v", raw, af.After, err)
			}
		}
	})
}

// FuzzIntParams holds the integer parameters (tree sizes of the proof
// routes, limits and offsets of the list routes) to their ranges: a value is
// taken only within them, and a refusal names the parameter.
func FuzzIntParams(f *testing.F) {
	for _, s := range []string{"size=1", "size=9007199254740992", "size=9007199254740993", "size=-1", "size=+5", "size=0x10",
		"limit=1000", "limit=1e3", "size=1&size=2", "limit="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		n, err := sizeParam(q, "size")
		if err != nil && !strings.HasPrefix(err.Error(), "size: ") {
			t.Fatalf("%q: refusal %q does not name size", raw, err)
		}
		if err == nil && q.Get("size") != "" && (n < 1 || n > maxTreeSize) {
			t.Fatalf("%q: size %d outside 1..%d", raw, n, int64(maxTreeSize))
		}
		l, err := intParam(q, "limit", 1, 1000, 50)
		if err != nil && !strings.HasPrefix(err.Error(), "limit: ") {
			t.Fatalf("%q: refusal %q does not name limit", raw, err)
		}
		if err == nil && (l < 1 || l > 1000) {
			t.Fatalf("%q: limit %d outside 1..1000", raw, l)
		}
	})
}
