// Package readbench measures the read side of a store on a large generated
// history: the searches people run (an organisation's day, a page deep in a
// result, a principal, an action family, a correlation id), each repeated
// enough times for a 95th percentile. The store tests run it behind
// AUDIT_READ_BENCH=1 (docs/querying.md); it is not part of CI.
package readbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/httpapi"
)

// The shape of the generated history, the same for every store, so that the
// scenarios know which values exist.
const (
	// BigOrganization holds BigShare of the events; the rest are spread evenly
	// over Organizations-1 others (org-001 …).
	BigOrganization = "org-000"
	BigShare        = 0.40
	Organizations   = 50
	// Principals are user-00000 … user-19999, drawn evenly.
	Principals = 20000
	// CorrelationGroup consecutive events share a correlation id.
	CorrelationGroup = 3
	// PageSize is the page every scenario reads.
	PageSize = 100
	// DeepPages is how many times the deep scenario follows the cursor.
	DeepPages = 10000
)

// CorrelationID is the correlation id of the i-th generated event (0-based).
// The generators compute the same value in SQL.
func CorrelationID(i int64) string {
	return fmt.Sprintf("corr-%012x", (i/CorrelationGroup)*2654435761%(1<<48))
}

// History is what a generated database holds.
type History struct {
	Events   int64
	From, To time.Time // event times are spread evenly over [From, To)
}

// Result is one scenario's latencies.
type Result struct {
	Name             string
	Requests         int
	Rows             int // rows returned over all requests
	P50, P95, Max    time.Duration
	ApproxDepthRows  int // for the deep scenario: rows skipped before the measured page
	FollowedPages    int
	TimeToFollowDeep time.Duration
}

func (r Result) String() string {
	s := fmt.Sprintf("%-34s n=%d rows/req=%.0f p50=%s p95=%s max=%s", r.Name, r.Requests,
		float64(r.Rows)/float64(r.Requests), ms(r.P50), ms(r.P95), ms(r.Max))
	if r.FollowedPages > 0 {
		s += fmt.Sprintf(" (after %d pages, %d rows deep, followed in %.1f s)", r.FollowedPages, r.ApproxDepthRows, r.TimeToFollowDeep.Seconds())
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// Search is one way of running a query: the store's SearchEvents, or a
// request through the HTTP API.
type Search func(ctx context.Context, q audit.EventQuery) (rows int, last audit.Position, err error)

// StoreSearch runs queries through r.SearchEvents.
func StoreSearch(r audit.EventReader) Search {
	return func(ctx context.Context, q audit.EventQuery) (int, audit.Position, error) {
		events, err := r.SearchEvents(ctx, q)
		if err != nil || len(events) == 0 {
			return 0, audit.Position{}, err
		}
		return len(events), audit.PositionOf(&events[len(events)-1]), nil
	}
}

// Scenario is a named query generator: the i-th request's query.
type Scenario struct {
	Name  string
	Query func(rng *rand.Rand, i int) audit.EventQuery
}

// Scenarios are the measured searches on h.
func Scenarios(h History) []Scenario {
	page := func(q audit.EventQuery) audit.EventQuery {
		q.Order, q.Limit = audit.OrderDesc, PageSize
		return q
	}
	day := func(rng *rand.Rand) (time.Time, time.Time) {
		span := h.To.Sub(h.From) - 24*time.Hour
		since := h.From.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Second)
		return since, since.Add(24 * time.Hour)
	}
	families := []string{"auth.*", "fhir.*", "data.*", "system.*"}
	return []Scenario{
		{"organisation, 24 h window", func(rng *rand.Rand, _ int) audit.EventQuery {
			since, until := day(rng)
			return page(audit.EventQuery{Organizations: []string{BigOrganization}, Since: since, Until: until})
		}},
		{"small organisation, 24 h window", func(rng *rand.Rand, _ int) audit.EventQuery {
			since, until := day(rng)
			return page(audit.EventQuery{Organizations: []string{fmt.Sprintf("org-%03d", 1+rng.IntN(Organizations-1))}, Since: since, Until: until})
		}},
		{"principal", func(rng *rand.Rand, _ int) audit.EventQuery {
			return page(audit.EventQuery{PrincipalID: fmt.Sprintf("user-%05d", rng.IntN(Principals))})
		}},
		{"principal in its organisation", func(rng *rand.Rand, _ int) audit.EventQuery {
			return page(audit.EventQuery{Organizations: []string{BigOrganization}, PrincipalID: fmt.Sprintf("user-%05d", rng.IntN(Principals))})
		}},
		{"action prefix", func(rng *rand.Rand, i int) audit.EventQuery {
			return page(audit.EventQuery{Action: families[i%len(families)]})
		}},
		{"action prefix in an organisation", func(rng *rand.Rand, i int) audit.EventQuery {
			return page(audit.EventQuery{Organizations: []string{fmt.Sprintf("org-%03d", rng.IntN(Organizations))}, Action: families[i%len(families)]})
		}},
		{"exact action, 24 h window", func(rng *rand.Rand, _ int) audit.EventQuery {
			since, until := day(rng)
			return page(audit.EventQuery{Action: "data.export", Since: since, Until: until})
		}},
		{"correlation id", func(rng *rand.Rand, _ int) audit.EventQuery {
			return page(audit.EventQuery{CorrelationID: CorrelationID(rng.Int64N(h.Events))})
		}},
	}
}

// Measure runs n requests of sc through search and returns their latencies.
func Measure(ctx context.Context, search Search, sc Scenario, n int) (Result, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, n)
	res := Result{Name: sc.Name, Requests: n}
	for i := range n {
		q := sc.Query(rng, i)
		start := time.Now()
		rows, _, err := search(ctx, q)
		lat = append(lat, time.Since(start))
		if err != nil {
			return res, fmt.Errorf("%s: %w", sc.Name, err)
		}
		res.Rows += rows
	}
	res.P50, res.P95, res.Max = percentiles(lat)
	return res, nil
}

// Deep follows the cursor of q pages times, then measures n requests of the
// page it reached (the same position each time).
func Deep(ctx context.Context, search Search, name string, q audit.EventQuery, pages, n int) (Result, error) {
	q.Order, q.Limit = audit.OrderDesc, PageSize
	res := Result{Name: name, Requests: n, FollowedPages: pages}
	start := time.Now()
	for p := range pages {
		rows, last, err := search(ctx, q)
		if err != nil {
			return res, fmt.Errorf("%s: page %d: %w", name, p, err)
		}
		if rows < PageSize {
			return res, fmt.Errorf("%s: page %d has %d rows: the history is too small to go %d pages deep", name, p, rows, pages)
		}
		res.ApproxDepthRows += rows
		q.After = &last
	}
	res.TimeToFollowDeep = time.Since(start)
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		rows, _, err := search(ctx, q)
		lat = append(lat, time.Since(start))
		if err != nil {
			return res, fmt.Errorf("%s: deep page: %w", name, err)
		}
		res.Rows += rows
	}
	res.P50, res.P95, res.Max = percentiles(lat)
	return res, nil
}

func percentiles(lat []time.Duration) (p50, p95, maxLat time.Duration) {
	slices.Sort(lat)
	at := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return at(0.50), at(0.95), lat[len(lat)-1]
}

// Run measures every scenario and the deep pages through search, n requests
// each, and logs the results.
func Run(t *testing.T, search Search, h History, n int, deep []DeepScenario) []Result {
	t.Helper()
	ctx := context.Background()
	var out []Result
	for _, sc := range Scenarios(h) {
		// One untimed round warms the caches a running worker would have warm.
		if _, err := Measure(ctx, search, sc, 20); err != nil {
			t.Fatal(err)
		}
		r, err := Measure(ctx, search, sc, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		out = append(out, r)
	}
	for _, d := range deep {
		r, err := Deep(ctx, search, d.Name, d.Query, d.Pages, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		out = append(out, r)
	}
	return out
}

// DeepScenario is a query whose cursor is followed Pages times.
type DeepScenario struct {
	Name  string
	Query audit.EventQuery
	Pages int
}

// Table renders results as a Markdown table for docs/BENCHMARKS.md.
func Table(results []Result) string {
	var b strings.Builder
	b.WriteString("| search | requests | rows per page | p50 | p95 | max |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %s |\n", r.Name, r.Requests, float64(r.Rows)/float64(r.Requests), ms(r.P50), ms(r.P95), ms(r.Max))
	}
	return b.String()
}

// HTTPSearch runs queries as GET /v1/events requests to baseURL with the
// API key, the way a client does; a query without Since searches from from
// (the API's default window is shorter than the history). It reads and
// counts the events of the page; the position it returns is zero (paging
// through HTTP takes the cursor, which Deep does not use).
func HTTPSearch(client *http.Client, baseURL, key string, from time.Time) Search {
	return func(ctx context.Context, q audit.EventQuery) (int, audit.Position, error) {
		v := url.Values{"limit": {strconv.Itoa(q.Limit)}, "order": {string(q.Order)}}
		since := q.Since
		if since.IsZero() {
			since = from
		}
		v.Set("since", since.Format(time.RFC3339Nano))
		if !q.Until.IsZero() {
			v.Set("until", q.Until.Format(time.RFC3339Nano))
		}
		for name, value := range map[string]string{"principalId": q.PrincipalID, "action": q.Action,
			"correlationId": q.CorrelationID, "sessionId": q.SessionID, "ipAddress": q.IPAddress} {
			if value != "" {
				v.Set(name, value)
			}
		}
		for _, org := range q.Organizations {
			v.Add("organizationId", org)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/events?"+v.Encode(), nil)
		if err != nil {
			return 0, audit.Position{}, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return 0, audit.Position{}, err
		}
		defer resp.Body.Close()
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			return 0, audit.Position{}, fmt.Errorf("GET /v1/events?%s: %s %s", v.Encode(), resp.Status, body)
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return 0, audit.Position{}, fmt.Errorf("GET /v1/events: %w", err)
		}
		return len(page.Events), audit.Position{}, nil
	}
}

// Named returns the scenarios of h with these names, in this order.
func Named(h History, names ...string) []Scenario {
	var out []Scenario
	for _, n := range names {
		for _, sc := range Scenarios(h) {
			if sc.Name == n {
				out = append(out, sc)
			}
		}
	}
	return out
}

// ServeHTTP starts the worker's HTTP API on r (cursors signed with a key kept
// in secrets) for the test, and returns a Search through it as an auditor
// whose scope is every organisation.
func ServeHTTP(t *testing.T, r audit.EventReader, exports audit.ExportStore, secrets audit.SecretStore, from time.Time) Search {
	t.Helper()
	const key = "readbench-key-0123456789abcdef"
	auth := access.NewAuthenticator(access.Options{})
	auth.SetStaticKeys([]access.StaticKey{{Name: "readbench", Key: key, Role: audit.RoleAuditor,
		Organizations: []string{audit.AllOrganizations}}})
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Auth: auth, Logger: slog.New(slog.DiscardHandler),
		Events: httpapi.EventOptions{Reader: r, Exports: exports, Secrets: secrets}}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	return HTTPSearch(client, srv.URL, key, from)
}

// RunHTTP measures the named scenarios through search (ServeHTTP), n
// requests each.
func RunHTTP(t *testing.T, search Search, h History, n int, names ...string) []Result {
	t.Helper()
	var out []Result
	for _, sc := range Named(h, names...) {
		if _, err := Measure(context.Background(), search, sc, 20); err != nil {
			t.Fatal(err)
		}
		r, err := Measure(context.Background(), search, sc, n)
		if err != nil {
			t.Fatal(err)
		}
		r.Name = "HTTP: " + r.Name
		t.Log(r)
		out = append(out, r)
	}
	return out
}
