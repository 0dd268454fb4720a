package storetest

import (
	"context"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// CountStore is a SearchStore that can also count a search's events.
type CountStore interface {
	SearchStore
	CountEvents(ctx context.Context, q audit.EventQuery) (int64, error)
}

// RunCount checks CountEvents against a brute-force count: every filter
// counts what a search of it returns, whatever its position, order and
// limit; a query no search accepts is refused. open must return a fresh,
// empty store for each call.
func RunCount(t *testing.T, open func(t *testing.T) CountStore) {
	s := open(t)
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	all := storeSearchRecords(t, s, searchRecords(9, 400, base))
	queries := map[string]audit.EventQuery{
		"everything":    {},
		"one org":       {Organizations: []string{"org-b"}},
		"action prefix": {Action: "auth.*", ExcludeActionPrefixes: []string{"audit."}},
		"status":        {Status: audit.StatusAttempt},
		"session":       {SessionID: "sess-1"},
		"window":        {Since: all[50].Time, Until: all[300].Time},
		"combined":      {Organizations: []string{"org-a", "org-c"}, PrincipalID: "bob", Since: all[10].Time},
		"no match":      {PrincipalID: "nobody"},
		// the position, order and limit of a page do not change the count
		"after a position": {Action: "auth.*", After: &audit.Position{Time: all[200].Time, Seq: all[200].Seq}, Limit: 3, Order: audit.OrderAsc},
	}
	for name, q := range queries {
		full := q
		full.After, full.Order, full.Limit = nil, audit.OrderAsc, len(all)+1
		want := int64(len(expected(all, full)))
		got, err := s.CountEvents(ctxFor(t), q)
		if err != nil || got != want {
			t.Errorf("%s: counted %d (%v), want %d", name, got, err, want)
		}
		if name != "everything" && name != "no match" && (want == 0 || want == int64(len(all))) {
			t.Errorf("%s: %d of %d events match; the query tests nothing", name, want, len(all))
		}
	}
	for name, q := range map[string]audit.EventQuery{
		"since after until": {Since: base.Add(time.Hour), Until: base},
		"inner wildcard":    {Action: "auth.*.x"},
		"empty org list":    {Organizations: []string{}},
	} {
		_, err := s.CountEvents(ctxFor(t), q)
		wantCode(t, name, err, audit.CodeInvalid)
	}
	ctx, cancel := context.WithCancel(ctxFor(t))
	cancel()
	if _, err := s.CountEvents(ctx, audit.EventQuery{}); err == nil {
		t.Error("a count with its context cancelled succeeded")
	}
}
