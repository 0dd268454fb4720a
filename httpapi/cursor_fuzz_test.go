package httpapi

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

var (
	fuzzCursorKey = bytes.Repeat([]byte{7}, 32)
	fuzzNow       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// searchKnown are the parameters GET /v1/events takes.
var searchKnown = append([]string{"limit", "cursor"}, searchParams...)

// filterSet is the canonical text of a search's filters: every parameter but
// the cursor and the page size, sorted by name, values in order.
func filterSet(q url.Values) string {
	f := url.Values{}
	for k, v := range q {
		if k != "cursor" && k != "limit" {
			f[k] = v
		}
	}
	return f.Encode()
}

// cursorSeeds are searches with a cursor issued for each: the filters it was
// issued for, by the cursor's text.
func cursorSeeds() (queries []string, issued map[string]string) {
	issued = map[string]string{}
	for i, raw := range []string{"", "organizationId=org-a&action=auth.*", "status=success&since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z",
		"organizationId=org-a,org-b&organizationId=org-c&order=asc&limit=5", "principalId=u%01b&action=x"} {
		q, _ := url.ParseQuery(raw)
		c := cursor{order: audit.OrderAsc, after: audit.Position{Time: fuzzNow.Add(-time.Duration(i) * time.Hour), Seq: int64(i + 1)},
			since: fuzzNow.Add(-30 * 24 * time.Hour).Truncate(time.Microsecond), filters: filterDigest(q), issued: fuzzNow.Add(-time.Minute)}
		if i%2 == 1 {
			c.order, c.until = audit.OrderDesc, fuzzNow.Truncate(time.Microsecond)
		}
		s := c.encode(fuzzCursorKey)
		queries = append(queries, raw+"&cursor="+s)
		issued[s] = filterSet(q)
	}
	return queries, issued
}

// FuzzSearchCursor decodes the cursor of any query string as GET /v1/events
// does. A cursor it accepts is one the server issued, for a search with the
// same filters, exactly as issued (encoding it again gives its text); any
// forged or mangled cursor is refused with an error about the cursor.
func FuzzSearchCursor(f *testing.F) {
	queries, issued := cursorSeeds()
	for _, q := range queries {
		f.Add(q)
		f.Add(strings.Replace(q, "org-a", "org-b", 1))
		f.Add(strings.Replace(q, "cursor=A", "cursor=B", 1))
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil || checkParams(q, searchKnown...) != nil {
			return // refused before any cursor is read
		}
		s, err := singleParam(q, "cursor")
		if err != nil || s == "" {
			return
		}
		c, err := decodeCursor(s, fuzzCursorKey, filterDigest(q), fuzzNow)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cursor: ") {
				t.Fatalf("refusal %q does not name the cursor", err)
			}
			return
		}
		want, ok := issued[s]
		if !ok {
			t.Fatalf("accepted cursor %q, which was never issued", s)
		}
		if got := filterSet(q); got != want {
			t.Fatalf("cursor issued for filters %q accepted for filters %q", want, got)
		}
		if again := c.encode(fuzzCursorKey); again != s {
			t.Fatalf("cursor %q decodes to %+v, which encodes as %q", s, c, again)
		}
	})
}

// FuzzFilterDigest holds filterDigest to telling filter sets apart: two
// searches the handler would run (checkParams passes both) with the same
// digest have the same filters, so a cursor never carries over to another
// search.
func FuzzFilterDigest(f *testing.F) {
	f.Add("action=a&principalId=b", "principalId=b&action=a")
	f.Add("organizationId=a&organizationId=b", "organizationId=a,b")
	f.Add("action=a%01principalId%00b", "action=a&principalId=b")
	f.Add("action=a&limit=5&cursor=x", "action=a")
	f.Fuzz(func(t *testing.T, a, b string) {
		qa, errA := url.ParseQuery(a)
		qb, errB := url.ParseQuery(b)
		if errA != nil || errB != nil || checkParams(qa, searchKnown...) != nil || checkParams(qb, searchKnown...) != nil {
			return
		}
		if filterDigest(qa) == filterDigest(qb) && filterSet(qa) != filterSet(qb) {
			t.Fatalf("filters %q and %q have the same digest", filterSet(qa), filterSet(qb))
		}
	})
}
