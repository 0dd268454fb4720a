package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to change rows behind the store's back

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/export"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
)

// eventsStore is what the read routes need from a store.
type eventsStore interface {
	audit.EventStore
	audit.EventReader
	audit.ExportStore
	audit.SecretStore
}

// tamperFunc changes one column of a stored row directly in SQL, as someone
// with database access could.
type tamperFunc func(t *testing.T, seq int64, column, value string)

var eventsStores = []struct {
	name string
	open func(t *testing.T) (eventsStore, tamperFunc)
}{
	{"sqlite", func(t *testing.T) (eventsStore, tamperFunc) {
		path := filepath.Join(t.TempDir(), "audit.db")
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func(t *testing.T, seq int64, column, value string) {
			t.Helper()
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			res, err := db.Exec(`UPDATE audit_log SET `+column+` = ? WHERE id = ?`, value, seq)
			checkOneRow(t, res, err)
		}
	}},
	{"postgres", func(t *testing.T) (eventsStore, tamperFunc) {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.PostgresDatabase(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func(t *testing.T, seq int64, column, value string) {
			t.Helper()
			tag, err := s.Pool().Exec(t.Context(), `UPDATE audit_log SET `+column+` = $1 WHERE id = $2`, value, seq)
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("%d rows changed, want 1", tag.RowsAffected())
			}
			if err != nil {
				t.Fatalf("tamper with %s of event %d: %v", column, seq, err)
			}
		}
	}},
}

func checkOneRow(t *testing.T, res sql.Result, err error) {
	t.Helper()
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err == nil && n != 1 {
		err = fmt.Errorf("%d rows changed, want 1", n)
	}
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// testEvent is what the test knows of a stored event, independently of the
// read side: its id, its event time and its filterable values.
type testEvent struct {
	seq    int64
	at     time.Time
	fields map[string]string // by search parameter name
}

// eventsFixture is a server whose read routes run on a real store holding
// events the test made.
type eventsFixture struct {
	srv    *httptest.Server
	api    *Server
	store  eventsStore
	tamper tamperFunc
	events []testEvent // in the order stored
	now    time.Time
}

var eventsHMACKey = []byte("events-test-hmac-key")

// Values the generated events draw from: each filter matches some events
// and misses others. Empty means the field is left out.
var (
	evOrgs        = []string{"org-a", "org-b", "org-c", ""}
	evPrincipals  = []string{"alice", "bob", "carol", ""}
	evActions     = []string{"auth.login", "auth.login.failure", "authz.check", "fhir.patient.read", "data.export", "auth"}
	evStatuses    = []string{"success", "failure", "attempt"}
	evTypes       = []string{"Patient", "Observation", "User", ""}
	evClasses     = []string{"PHI", "INTERNAL", "CONFIDENTIAL", "PUBLIC", ""}
	evIPs         = []string{"10.0.0.0", "10.0.0.1", "10.0.0.2", "2001:db8::7"}
	evOutcomes    = []string{"ok", `=HYPERLINK("http://evil.example","x")`, "+1+2", "-3", "@SUM(A1)", "a, \"quoted\"\nsecond line ünï 🩺"}
	searchFilters = []string{"organizationId", "principalId", "action", "status", "targetResourceType",
		"targetResourceId", "dataClassification", "correlationId", "sessionId", "ipAddress"}
)

// walkCorrelation marks the 8 events of the paging walk.
const walkCorrelation = "walk-8"

func newEventsFixture(t *testing.T, open func(t *testing.T) (eventsStore, tamperFunc)) *eventsFixture {
	t.Helper()
	store, tamper := open(t)
	f := &eventsFixture{store: store, tamper: tamper, now: time.Now()}
	f.api = New(Options{Auth: adminAuth(testKey), Events: EventOptions{Reader: store, Exports: store, Secrets: store,
		HMACKey: func() []byte { return eventsHMACKey }}})
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	f.storeEvents(t, f.generate())
	return f
}

// generate makes 90 events over the last 10 days (a fifth share their time
// with the one before), 3 older than the default 30-day window, and the 8
// events of the paging walk, two pairs of which share their time.
func (f *eventsFixture) generate() []map[string]any {
	rng := rand.New(rand.NewPCG(11, 12))
	pick := func(vs []string) string { return vs[rng.IntN(len(vs))] }
	var out []map[string]any
	at := f.now.Add(-10 * 24 * time.Hour)
	for i := range 90 {
		if rng.IntN(5) != 0 {
			at = at.Add(time.Millisecond + time.Duration(rng.IntN(int(2*time.Hour))))
		}
		e := map[string]any{
			"timestamp": at.UTC().Format("2006-01-02T15:04:05.000Z"), "action": pick(evActions), "status": pick(evStatuses),
			"organizationId": pick(evOrgs), "principalId": pick(evPrincipals), "targetResourceType": pick(evTypes),
			"targetResourceId": fmt.Sprintf("r-%d", rng.IntN(4)), "dataClassification": pick(evClasses),
			"correlationId": fmt.Sprintf("corr-%d", rng.IntN(5)), "outcomeDescription": pick(evOutcomes),
			"eventVersion": "1.0", "n": i,
		}
		if i%6 != 5 {
			e["sessionContext"] = map[string]any{"sessionId": fmt.Sprintf("sess-%d", rng.IntN(4)), "ipAddress": pick(evIPs),
				"userAgent": "events-test"}
		}
		out = append(out, e)
	}
	for i := range 3 {
		out = append(out, map[string]any{"timestamp": f.now.Add(-40*24*time.Hour + time.Duration(i)*time.Minute).UTC().Format("2006-01-02T15:04:05.000Z"),
			"action": "auth.login", "status": "success", "organizationId": "org-a", "principalId": "alice", "correlationId": "old"})
	}
	walk := f.now.Add(-36 * time.Hour)
	for i := range 8 {
		if i != 3 && i != 6 { // events 3 and 6 share the time of the one before
			walk = walk.Add(time.Minute)
		}
		out = append(out, map[string]any{"timestamp": walk.UTC().Format("2006-01-02T15:04:05.000Z"), "action": "data.export",
			"status": "success", "organizationId": "org-b", "principalId": "dave", "correlationId": walkCorrelation})
	}
	return out
}

// storeEvents hashes and signs the events as a producer does, stores them,
// and keeps what the test knows of each.
func (f *eventsFixture) storeEvents(t *testing.T, events []map[string]any) {
	t.Helper()
	recs := make([]audit.Record, len(events))
	for i, fields := range events {
		for k, v := range fields {
			if v == "" {
				delete(fields, k)
			}
		}
		payload := sealEvent(t, fields)
		ev, _, err := audit.ParseEvent(payload, audit.DefaultRules(), f.now)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, payload)
		}
		integrity, err := audit.VerifyIntegrity(&ev, eventsHMACKey)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		recs[i] = audit.NewRecord(ev, fmt.Sprintf("events-test:%d", i), "events-test", integrity, f.now)
	}
	res, err := f.store.StoreBatch(t.Context(), audit.Batch{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	for i, fields := range events {
		if res[i].Seq == 0 {
			t.Fatalf("event %d not stored: %+v", i, res[i])
		}
		te := testEvent{seq: res[i].Seq, at: recs[i].Time, fields: map[string]string{}}
		for _, name := range searchFilters {
			if v, ok := fields[name].(string); ok {
				te.fields[name] = v
			}
		}
		if sc, ok := fields["sessionContext"].(map[string]any); ok {
			te.fields["sessionId"], te.fields["ipAddress"] = sc["sessionId"].(string), sc["ipAddress"].(string)
		}
		f.events = append(f.events, te)
	}
}

// sealEvent adds the producer hash and HMAC signature to an event.
func sealEvent(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	data, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := audit.HashPayload(data)
	if err != nil {
		t.Fatal(err)
	}
	fields["hash"], fields["hashAlgorithm"] = hash, "SHA-256"
	fields["signature"], fields["algorithm"] = audit.Sign(hash, eventsHMACKey), "HMAC-SHA256"
	data, err = json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// bruteForce answers a search from what the test knows, without the
// server's parsing or the store's SQL: the ids, in the order asked.
func (f *eventsFixture) bruteForce(t *testing.T, q url.Values, now time.Time) []int64 {
	t.Helper()
	since := now.Add(-30 * 24 * time.Hour)
	var until time.Time
	var err error
	if v := q.Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			t.Fatal(err)
		}
	}
	if v := q.Get("until"); v != "" {
		if until, err = time.Parse(time.RFC3339Nano, v); err != nil {
			t.Fatal(err)
		}
	}
	var orgs []string
	for _, v := range q["organizationId"] {
		orgs = append(orgs, strings.Split(v, ",")...)
	}
	var match []testEvent
	for _, e := range f.events {
		ok := !e.at.Before(since) && (until.IsZero() || e.at.Before(until)) &&
			(orgs == nil || slices.Contains(orgs, e.fields["organizationId"]))
		for _, name := range searchFilters[1:] {
			want := q.Get(name)
			switch {
			case want == "":
			case name == "action" && strings.HasSuffix(want, ".*"):
				ok = ok && strings.HasPrefix(e.fields[name], strings.TrimSuffix(want, "*"))
			default:
				ok = ok && e.fields[name] == want
			}
		}
		if ok {
			match = append(match, e)
		}
	}
	asc := q.Get("order") == "asc"
	slices.SortFunc(match, func(a, b testEvent) int {
		c := a.at.Compare(b.at)
		if c == 0 {
			c = int(a.seq - b.seq)
		}
		if asc {
			return c
		}
		return -c
	})
	ids := make([]int64, len(match))
	for i, e := range match {
		ids[i] = e.seq
	}
	return ids
}

// get sends an authenticated GET and returns the response and its body.
func (f *eventsFixture) get(t *testing.T, path string, q url.Values) (*http.Response, []byte) {
	t.Helper()
	target := f.srv.URL + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return f.getRaw(t, target)
}

func (f *eventsFixture) getRaw(t *testing.T, target string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

type searchPage struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"nextCursor"`
}

// page reads one page of a search; it fails the test on anything but 200.
func (f *eventsFixture) page(t *testing.T, q url.Values) searchPage {
	t.Helper()
	resp, body := f.get(t, "/v1/events", q)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events?%s: %d %s", q.Encode(), resp.StatusCode, body)
	}
	var p searchPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("page: %v\n%s", err, body)
	}
	return p
}

// searchAll walks a search page by page with its cursors and returns every
// event as the pages held it (exact bytes) and how many pages it took.
func (f *eventsFixture) searchAll(t *testing.T, q url.Values, limit int) ([]json.RawMessage, int) {
	t.Helper()
	var events []json.RawMessage
	pq := cloneValues(q)
	pq.Set("limit", strconv.Itoa(limit))
	for pages := 1; ; pages++ {
		p := f.page(t, pq)
		if len(p.Events) > limit {
			t.Fatalf("page %d holds %d events, limit %d", pages, len(p.Events), limit)
		}
		events = append(events, p.Events...)
		if p.NextCursor == "" {
			return events, pages
		}
		if len(p.Events) != limit {
			t.Fatalf("page %d holds %d events, not a full page of %d, yet has a next cursor", pages, len(p.Events), limit)
		}
		if pages > 1000 {
			t.Fatal("the walk does not end")
		}
		pq.Set("cursor", p.NextCursor)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

// eventIDs returns the "id" of each rendered event.
func eventIDs(t *testing.T, events []json.RawMessage) []int64 {
	t.Helper()
	ids := make([]int64, len(events))
	for i, raw := range events {
		var e struct{ ID int64 }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, raw)
		}
		ids[i] = e.ID
	}
	return ids
}

func TestEventsSearchFilters(t *testing.T) {
	for _, kind := range eventsStores {
		t.Run(kind.name, func(t *testing.T) {
			f := newEventsFixture(t, kind.open)
			recent := f.events[:90]
			mid := recent[45].at.UTC().Format(time.RFC3339Nano)
			cases := []struct {
				name   string
				q      url.Values
				subset bool // matches some events and misses others
			}{
				{"no filter", url.Values{}, false},
				{"organization", url.Values{"organizationId": {"org-a"}}, true},
				{"two organizations repeated", url.Values{"organizationId": {"org-a", "org-c"}}, true},
				{"two organizations comma-separated", url.Values{"organizationId": {"org-a,org-b"}}, true},
				{"principal", url.Values{"principalId": {"alice"}}, true},
				{"exact action", url.Values{"action": {"auth.login"}}, true},
				{"action prefix", url.Values{"action": {"auth.*"}}, true},
				{"action prefix is a segment", url.Values{"action": {"auth.login.*"}}, true},
				{"status", url.Values{"status": {"failure"}}, true},
				{"target type", url.Values{"targetResourceType": {"Patient"}}, true},
				{"target id", url.Values{"targetResourceId": {"r-2"}}, true},
				{"classification", url.Values{"dataClassification": {"PHI"}}, true},
				{"correlation", url.Values{"correlationId": {"corr-3"}}, true},
				{"session", url.Values{"sessionId": {"sess-1"}}, true},
				{"ip address", url.Values{"ipAddress": {"10.0.0.1"}}, true},
				{"ipv6 address", url.Values{"ipAddress": {"2001:db8::7"}}, true},
				{"since, inclusive", url.Values{"since": {mid}}, true},
				{"until, exclusive", url.Values{"until": {mid}}, true},
				{"since with another offset", url.Values{"since": {recent[30].at.In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339Nano)}}, true},
				// Event times are kept to the microsecond: a bound between two
				// microseconds still splits the events exactly.
				{"since between microseconds", url.Values{"since": {recent[45].at.Add(500 * time.Nanosecond).UTC().Format(time.RFC3339Nano)}}, true},
				{"until between microseconds", url.Values{"until": {recent[45].at.Add(500 * time.Nanosecond).UTC().Format(time.RFC3339Nano)}}, true},
				{"since before the default window", url.Values{"since": {f.now.Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)}}, false},
				{"order asc", url.Values{"order": {"asc"}}, false},
				{"order desc", url.Values{"order": {"desc"}}, false},
				{"org, status, action prefix", url.Values{"organizationId": {"org-b"}, "status": {"success"}, "action": {"auth.*"}}, true},
				{"principal, classification, asc", url.Values{"principalId": {"alice"}, "dataClassification": {"PHI"}, "order": {"asc"}}, true},
				{"target, session", valuesOf(t, recent, "targetResourceType", "targetResourceId", "sessionId"), true},
				{"org, principal, ip, classification", valuesOf(t, recent, "organizationId", "principalId", "ipAddress", "dataClassification"), true},
				{"window, ip, asc", url.Values{"since": {recent[20].at.UTC().Format(time.RFC3339Nano)},
					"until": {recent[70].at.UTC().Format(time.RFC3339Nano)}, "ipAddress": {"10.0.0.0"}, "order": {"asc"}}, true},
				{"correlation, principal", url.Values{"correlationId": {"corr-1"}, "principalId": {"bob"}}, true},
				{"no match", url.Values{"principalId": {"nobody"}}, false},
			}
			// Random combinations of two to four filters, with values the events hold.
			rng := rand.New(rand.NewPCG(5, 6))
			for i := range 25 {
				q := url.Values{}
				for range 2 + rng.IntN(3) {
					e := recent[rng.IntN(len(recent))]
					name := searchFilters[rng.IntN(len(searchFilters))]
					if v := e.fields[name]; v != "" {
						q.Set(name, v)
					}
				}
				if rng.IntN(2) == 0 {
					q.Set("order", "asc")
				}
				cases = append(cases, struct {
					name   string
					q      url.Values
					subset bool
				}{fmt.Sprintf("random %d", i), q, false})
			}
			for _, tc := range cases {
				want := f.bruteForce(t, tc.q, time.Now())
				events, _ := f.searchAll(t, tc.q, 7)
				if got := eventIDs(t, events); !slices.Equal(got, want) {
					t.Errorf("%s (%s): ids %v, want %v", tc.name, tc.q.Encode(), got, want)
				}
				if tc.subset && (len(want) == 0 || len(want) >= len(recent)) {
					t.Errorf("%s: %d of %d events match; the case does not test its filter", tc.name, len(want), len(f.events))
				}
			}
		})
	}
}

// valuesOf is a search for the values of the first event that has all the
// named fields: a combination that matches at least one event.
func valuesOf(t *testing.T, events []testEvent, names ...string) url.Values {
	t.Helper()
	for _, e := range events {
		q := url.Values{}
		for _, name := range names {
			if v := e.fields[name]; v != "" {
				q.Set(name, v)
			}
		}
		if len(q) == len(names) {
			return q
		}
	}
	t.Fatalf("no event has all of %v", names)
	return nil
}

// A search of 8 events, 3 a page, takes three pages (3, 3, 2) in either
// order: every event once, none missed, ties on the event time broken by id.
func TestEventsThreePageWalk(t *testing.T) {
	for _, kind := range eventsStores {
		t.Run(kind.name, func(t *testing.T) {
			f := newEventsFixture(t, kind.open)
			for _, order := range []string{"desc", "asc"} {
				q := url.Values{"correlationId": {walkCorrelation}, "order": {order}}
				want := f.bruteForce(t, q, time.Now())
				if len(want) != 8 {
					t.Fatalf("%d walk events, want 8", len(want))
				}
				q.Set("limit", "3")
				var got []int64
				var sizes []int
				for {
					p := f.page(t, q)
					got = append(got, eventIDs(t, p.Events)...)
					sizes = append(sizes, len(p.Events))
					if p.NextCursor == "" || len(sizes) > 3 {
						break
					}
					q.Set("cursor", p.NextCursor)
				}
				if !slices.Equal(sizes, []int{3, 3, 2}) {
					t.Errorf("%s: page sizes %v, want [3 3 2] and no cursor after the last", order, sizes)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: ids %v, want %v", order, got, want)
				}
				seen := map[int64]bool{}
				for _, id := range got {
					if seen[id] {
						t.Errorf("%s: event %d on two pages", order, id)
					}
					seen[id] = true
				}
			}
		})
	}
}

// errorBody decodes an error answer.
func errorBody(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error answer is not JSON: %v\n%s", err, body)
	}
	return e.Error.Code, e.Error.Message
}

// wantBadRequest checks an answer is a 400 whose message starts with the
// parameter's name.
func wantBadRequest(t *testing.T, what string, resp *http.Response, body []byte, param string) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("%s: status %d, want 400: %s", what, resp.StatusCode, body)
		return
	}
	if code, msg := errorBody(t, body); code != string(audit.CodeInvalid) || !strings.HasPrefix(msg, param+":") {
		t.Errorf("%s: error %s %q, want invalid naming %q", what, code, msg, param)
	}
}

func TestEventsCursors(t *testing.T) {
	for _, kind := range eventsStores {
		t.Run(kind.name, func(t *testing.T) {
			f := newEventsFixture(t, kind.open)
			q := url.Values{"correlationId": {walkCorrelation}, "limit": {"3"}}
			first := f.page(t, q)
			if first.NextCursor == "" {
				t.Fatal("no cursor after the first page")
			}
			withCursor := func(q url.Values, c string) url.Values {
				q = cloneValues(q)
				q.Set("cursor", c)
				return q
			}

			// The cursor continues its own search, with another page size too.
			q2 := withCursor(q, first.NextCursor)
			q2.Set("limit", "5")
			if p := f.page(t, q2); len(p.Events) != 5 || p.NextCursor != "" {
				t.Errorf("continuation with limit 5: %d events, cursor %q; want the 5 left", len(p.Events), p.NextCursor)
			}

			// Reused with other filters.
			for _, other := range []url.Values{
				{"correlationId": {walkCorrelation}, "status": {"success"}},
				{"correlationId": {walkCorrelation}, "order": {"asc"}},
				{"correlationId": {"corr-1"}},
				{},
			} {
				resp, body := f.get(t, "/v1/events", withCursor(other, first.NextCursor))
				wantBadRequest(t, "cursor with "+other.Encode(), resp, body, "cursor")
			}

			// Forged: any one byte changed.
			raw, err := base64.RawURLEncoding.DecodeString(first.NextCursor)
			if err != nil {
				t.Fatal(err)
			}
			for i := range raw {
				forged := slices.Clone(raw)
				forged[i] ^= 0x01
				resp, body := f.get(t, "/v1/events", withCursor(q, base64.RawURLEncoding.EncodeToString(forged)))
				wantBadRequest(t, fmt.Sprintf("cursor with byte %d changed", i), resp, body, "cursor")
			}
			for _, bad := range []string{"x", first.NextCursor[:len(first.NextCursor)-2], first.NextCursor + "AA", "!!!"} {
				resp, body := f.get(t, "/v1/events", withCursor(q, bad))
				wantBadRequest(t, "malformed cursor "+bad, resp, body, "cursor")
			}

			// Expired: signed with the server's key, issued more than 24 hours ago.
			key, err := f.api.cursorKey(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			walk := f.events[len(f.events)-8:]
			crafted := func(age time.Duration) string {
				return cursor{order: audit.OrderDesc, after: audit.Position{Time: walk[5].at, Seq: walk[5].seq},
					since: now.Add(-30 * 24 * time.Hour), filters: filterDigest(q), issued: now.Add(-age)}.encode(key)
			}
			resp, body := f.get(t, "/v1/events", withCursor(q, crafted(25*time.Hour)))
			wantBadRequest(t, "cursor issued 25 hours ago", resp, body, "cursor")
			if _, msg := errorBody(t, body); !strings.Contains(msg, "expired") {
				t.Errorf("expired cursor: %q does not say it expired", msg)
			}
			// The same cursor issued 23 hours ago is good: only its age differs.
			p := f.page(t, withCursor(q, crafted(23*time.Hour)))
			want := []int64{walk[4].seq, walk[3].seq, walk[2].seq}
			if got := eventIDs(t, p.Events); !slices.Equal(got, want) {
				t.Errorf("cursor issued 23 hours ago: ids %v, want %v", got, want)
			}
		})
	}
}

// Bad input gets a 400 naming the parameter, never a 500, on the search and
// the export alike.
func TestEventsBadInput(t *testing.T) {
	for _, kind := range eventsStores {
		t.Run(kind.name, func(t *testing.T) { testEventsBadInput(t, newEventsFixture(t, kind.open)) })
	}
}

func testEventsBadInput(t *testing.T, f *eventsFixture) {
	long := strings.Repeat("x", 10<<10)
	cases := []struct {
		name, query, param string
		route              string // "" both, else the only route that takes it
	}{
		{"unknown parameter", "foo=1", "foo", ""},
		{"misspelt filter", "principalID=alice", "principalID", ""},
		{"malformed since", "since=yesterday", "since", ""},
		{"since without offset", "since=2026-01-02T15:04:05", "since", ""},
		{"malformed until", "until=2026-13-01T00:00:00Z", "until", ""},
		{"since past year 9999 in UTC", "since=9999-12-31T23:00:00-05:00", "since", ""},
		{"until before year 0 in UTC", "until=0000-01-01T00:00:00%2B01:00", "until", ""},
		{"until before since", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until", ""},
		{"limit 0", "limit=0", "limit", "/v1/events"},
		{"limit 1001", "limit=1001", "limit", "/v1/events"},
		{"limit negative", "limit=-1", "limit", "/v1/events"},
		{"limit not a number", "limit=ten", "limit", "/v1/events"},
		{"limit twice", "limit=1&limit=2", "limit", "/v1/events"},
		{"limit on an export", "limit=10", "limit", "/v1/events/export"},
		{"status maybe", "status=maybe", "status", ""},
		{"classification", "dataClassification=SECRET", "dataClassification", ""},
		{"wildcard inside an action", "action=a*b", "action", ""},
		{"wildcard alone", "action=*", "action", ""},
		{"two wildcards", "action=auth.*.*", "action", ""},
		{"value with NUL", "principalId=a%00b", "principalId", ""},
		{"organization with NUL", "organizationId=org%00a", "organizationId", ""},
		{"invalid UTF-8", "sessionId=%FF%FE", "sessionId", ""},
		{"10 KB value", "correlationId=" + long, "correlationId", ""},
		{"order sideways", "order=sideways", "order", ""},
		{"filter twice", "principalId=alice&principalId=bob", "principalId", ""},
		{"garbage cursor", "cursor=not-a-cursor", "cursor", "/v1/events"},
		{"format xml", "format=xml", "format", "/v1/events/export"},
		{"gzip maybe", "gzip=maybe", "gzip", "/v1/events/export"},
	}
	for _, route := range []string{"/v1/events", "/v1/events/export"} {
		for _, tc := range cases {
			if tc.route != "" && tc.route != route {
				continue
			}
			resp, body := f.getRaw(t, f.srv.URL+route+"?"+tc.query)
			wantBadRequest(t, route+" "+tc.name, resp, body, tc.param)
		}
	}
	// Extreme but valid input is answered, never with a 500.
	for _, route := range []string{"/v1/events", "/v1/events/export"} {
		for _, query := range []string{
			"since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.9999999Z",
			"since=0001-01-01T00:00:00.0000001Z",
			"until=9999-12-31T23:59:59Z&order=asc",
			"principalId=" + strings.Repeat("é", 512), // 1,024 bytes: the longest value taken
			"action=.*",
			"organizationId=,,",
		} {
			if resp, body := f.getRaw(t, f.srv.URL+route+"?"+query); resp.StatusCode != http.StatusOK {
				t.Errorf("%s?%s: status %d: %s", route, query, resp.StatusCode, body)
			}
		}
	}
	for _, tc := range []struct {
		path   string
		status int
		param  string
	}{
		{"/v1/events/abc", http.StatusBadRequest, "id"},
		{"/v1/events/0", http.StatusBadRequest, "id"},
		{"/v1/events/-3/verify", http.StatusBadRequest, "id"},
		{"/v1/events/99999999", http.StatusNotFound, ""},
		{"/v1/events/99999999/verify", http.StatusNotFound, ""},
		{"/v1/events/1?pretty=1", http.StatusBadRequest, "pretty"},
		{"/v1/exports/exp_0000", http.StatusNotFound, ""},
		{"/v1/exports/nope", http.StatusNotFound, ""},
	} {
		resp, body := f.getRaw(t, f.srv.URL+tc.path)
		if tc.status == http.StatusBadRequest {
			wantBadRequest(t, tc.path, resp, body, tc.param)
		} else if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.path, resp.StatusCode, tc.status, body)
		}
	}
}

// export runs an export and checks what every export must hold: the export
// id, the trailers, and a kept manifest that describes the bytes received.
func (f *eventsFixture) export(t *testing.T, q url.Values) ([]byte, audit.ExportManifest) {
	t.Helper()
	resp, body := f.get(t, "/v1/events/export", q)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export %s: %d %s", q.Encode(), resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Export-Id")
	if !strings.HasPrefix(id, "exp_") {
		t.Fatalf("X-Export-Id %q", id)
	}
	sum := sha256.Sum256(body)
	if got := resp.Trailer.Get("X-Export-SHA256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("trailer X-Export-SHA256 %q, want the SHA-256 of the body", got)
	}
	if resp.Trailer.Get("X-Export-Complete") != "true" {
		t.Errorf("trailer X-Export-Complete %q", resp.Trailer.Get("X-Export-Complete"))
	}
	mresp, mbody := f.get(t, "/v1/exports/"+id, nil)
	if mresp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/exports/%s: %d %s", id, mresp.StatusCode, mbody)
	}
	var m audit.ExportManifest
	if err := json.Unmarshal(mbody, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != id || m.SHA256 != hex.EncodeToString(sum[:]) || m.Bytes != int64(len(body)) || !m.Complete ||
		resp.Trailer.Get("X-Export-Rows") != strconv.FormatInt(m.RowCount, 10) {
		t.Errorf("manifest %+v for %d bytes with SHA-256 %x, trailer rows %s", m, len(body), sum, resp.Trailer.Get("X-Export-Rows"))
	}
	return body, m
}

// checkManifestRows checks a manifest's row count and first and last ids
// against the events the search returned.
func checkManifestRows(t *testing.T, m audit.ExportManifest, ids []int64) {
	t.Helper()
	if m.RowCount != int64(len(ids)) || len(ids) == 0 || m.FirstID != ids[0] || m.LastID != ids[len(ids)-1] {
		t.Errorf("manifest rows %d, first %d, last %d; want %d rows from %v", m.RowCount, m.FirstID, m.LastID, len(ids), ids)
	}
}

func TestEventsExport(t *testing.T) {
	for _, kind := range eventsStores {
		t.Run(kind.name, func(t *testing.T) {
			f := newEventsFixture(t, kind.open)
			q := url.Values{"organizationId": {"org-a", "org-b"}, "since": {f.now.Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)}}
			pages, n := f.searchAll(t, q, 5)
			ids := eventIDs(t, pages)
			if n < 3 {
				t.Fatalf("%d pages; the export must be compared with several", n)
			}

			t.Run("ndjson", func(t *testing.T) {
				var want []byte
				for _, e := range pages {
					want = append(append(want, e...), '\n')
				}
				body, m := f.export(t, q)
				if !bytes.Equal(body, want) {
					t.Errorf("NDJSON export differs from the search pages (%d vs %d bytes)\n%s\n---\n%s", len(body), len(want), body, want)
				}
				checkManifestRows(t, m, ids)
				if m.Format != "ndjson" || m.Gzip || !slices.Equal(m.Filters["organizationId"], []string{"org-a", "org-b"}) {
					t.Errorf("manifest %+v", m)
				}
			})

			t.Run("csv", func(t *testing.T) {
				cq := cloneValues(q)
				cq.Set("format", "csv")
				body, m := f.export(t, cq)
				rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != len(pages)+1 || !slices.Equal(rows[0], export.CSVHeader) {
					t.Fatalf("%d rows, header %q; want %d and the CSV header", len(rows), rows[0], len(pages)+1)
				}
				for i, raw := range pages {
					checkCSVRow(t, rows[0], rows[i+1], raw)
				}
				checkManifestRows(t, m, ids)
			})

			t.Run("gzip", func(t *testing.T) {
				plain, _ := f.export(t, q)
				gq := cloneValues(q)
				gq.Set("gzip", "true")
				body, m := f.export(t, gq)
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				unzipped, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(unzipped, plain) || !m.Gzip {
					t.Errorf("gunzipped export differs from the plain one (%d vs %d bytes), manifest gzip %v", len(unzipped), len(plain), m.Gzip)
				}
				checkManifestRows(t, m, ids)
			})

			t.Run("json", func(t *testing.T) {
				jq := cloneValues(q)
				jq.Set("format", "json")
				body, m := f.export(t, jq)
				var events []json.RawMessage
				if err := json.Unmarshal(body, &events); err != nil {
					t.Fatal(err)
				}
				for i := range events {
					if !bytes.Equal(events[i], pages[i]) {
						t.Fatalf("event %d differs:\n%s\n%s", i, events[i], pages[i])
					}
				}
				if len(events) != len(pages) {
					t.Errorf("%d events, want %d", len(events), len(pages))
				}
				checkManifestRows(t, m, ids)
			})
		})
	}
}

// checkCSVRow compares a CSV row with the event as the search rendered it.
func checkCSVRow(t *testing.T, header, row []string, raw json.RawMessage) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	var details map[string]json.RawMessage
	detailsText := ""
	if d, ok := e["details"]; ok {
		b, _ := json.Marshal(d)
		_ = json.Unmarshal(b, &details)
		// The cell holds details as stored: take them from the raw event.
		var exact struct{ Details json.RawMessage }
		_ = json.Unmarshal(raw, &exact)
		detailsText = string(exact.Details)
	}
	sc := map[string]string{}
	if d, ok := details["sessionContext"]; ok {
		_ = json.Unmarshal(d, &sc)
	}
	str := func(name string) string {
		switch v := e[name].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	want := map[string]string{
		"ID": str("id"), "Timestamp": str("timestamp"), "Principal ID": str("principalId"),
		"Organization ID": str("organizationId"), "Action": str("action"), "Target Resource Type": str("targetResourceType"),
		"Target Resource ID": str("targetResourceId"), "Status": str("status"), "Outcome Description": str("outcomeDescription"),
		"Data Classification": str("dataClassification"), "IP Address": sc["ipAddress"], "User Agent": sc["userAgent"],
		"Session ID": sc["sessionId"], "Correlation ID": str("correlationId"), "Hash": str("hash"),
		"Hash Algorithm": str("hashAlgorithm"), "Signature": str("signature"), "Signature Algorithm": str("algorithm"),
		"Event Version": str("eventVersion"), "Received At": str("receivedAt"), "Record Hash": str("recordHash"),
		"Details": detailsText,
	}
	for i, name := range header {
		w, ok := want[name]
		if !ok {
			continue
		}
		if w != "" && strings.ContainsRune("=+-@\t\r", rune(w[0])) {
			w = "'" + w // a spreadsheet must not run it
		}
		if row[i] != w {
			t.Errorf("event %s, column %q: %q, want %q", str("id"), name, row[i], w)
		}
	}
}

type verifyAnswer struct {
	ID       int64         `json:"id"`
	Verified bool          `json:"verified"`
	Checks   []audit.Check `json:"checks"`
}

func (f *eventsFixture) verify(t *testing.T, seq int64) verifyAnswer {
	t.Helper()
	resp, body := f.get(t, fmt.Sprintf("/v1/events/%d/verify", seq), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify %d: %d %s", seq, resp.StatusCode, body)
	}
	var v verifyAnswer
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func failedCheckNames(v verifyAnswer) []string {
	var names []string
	for _, c := range v.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	return names
}

// A fresh row verifies; a row changed in SQL afterwards does not, and the
// answer names the checks that failed.
func TestEventsVerifyDetectsTampering(t *testing.T) {
	for _, kind := range eventsStores {
		t.Run(kind.name, func(t *testing.T) {
			f := newEventsFixture(t, kind.open)
			for _, e := range f.events[:3] {
				v := f.verify(t, e.seq)
				if !v.Verified || v.ID != e.seq || len(v.Checks) != 3 || failedCheckNames(v) != nil {
					t.Fatalf("fresh event %d: %+v, want verified with 3 checks", e.seq, v)
				}
				for _, c := range v.Checks {
					if c.Note != "" {
						t.Errorf("fresh event %d: check %s was not made: %s", e.seq, c.Name, c.Note)
					}
				}
			}
			for i, tc := range []struct {
				column, value string
				failed        []string
			}{
				// details are not hashed by the producer: only our record hash sees the change.
				{"details", `{"n":0,"changed":true}`, []string{audit.CheckRecordHash}},
				// action is: the producer hash, the signature over it and the record hash all fail.
				{"action", "auth.logout", []string{audit.CheckProducerHash, audit.CheckSignature, audit.CheckRecordHash}},
				{"outcome_description", "nothing happened", []string{audit.CheckProducerHash, audit.CheckSignature, audit.CheckRecordHash}},
			} {
				seq := f.events[10+i].seq // a row of its own for each change
				f.tamper(t, seq, tc.column, tc.value)
				v := f.verify(t, seq)
				if v.Verified || !slices.Equal(failedCheckNames(v), tc.failed) {
					t.Errorf("after changing %s of event %d: verified %v, failed %v; want false, %v", tc.column, seq, v.Verified, failedCheckNames(v), tc.failed)
				}
				for _, c := range v.Checks {
					if !c.OK && (c.Expected == "" || c.Found == "" || c.Expected == c.Found) && c.Name != audit.CheckSignature {
						t.Errorf("%s: failed check %+v must show what the row holds and what was recomputed", tc.column, c)
					}
				}
			}
		})
	}
}
