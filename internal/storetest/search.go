package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// SearchStore is what the search suite needs: writing and reading events.
type SearchStore interface {
	audit.EventStore
	audit.EventReader
}

// RunSearch runs the EventReader conformance tests: every filter alone and
// combined, keyset paging in both orders, paging while rows are inserted.
// open must return a fresh, empty store for each call.
func RunSearch(t *testing.T, open func(t *testing.T) SearchStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s SearchStore)
	}{
		{"FiltersAloneAndCombined", testSearchFilters},
		{"KeysetPagingBothOrders", testSearchPaging},
		{"PagingWhileInserting", testSearchConcurrentInsert},
		{"GetEventBySeq", testGetEventBySeq},
		{"BadQueries", testSearchBadQueries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var (
	searchOrgs       = []string{"org-a", "org-b", "org-c", ""}
	searchPrincipals = []string{"alice", "bob", "carol", "", "audit-svc"}
	searchActions    = []string{"auth.login", "auth.login.failure", "authz.check", "fhir.patient.read",
		"data.export", "audit.access.query", "auth"}
	searchTypes = []string{"Patient", "Observation", "User", ""}
)

// searchRecords makes n records over a few days whose fields repeat, so that
// every filter matches some and misses some; a fifth of them share their
// event time with the record before (ties broken by Seq).
func searchRecords(seed uint64, n int, base time.Time) []audit.Record {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]audit.Record, n)
	at := base
	for i := range out {
		if rng.IntN(5) != 0 {
			at = at.Add(time.Duration(rng.IntN(int(40*time.Minute))) + time.Microsecond)
		}
		ts := at.UTC().Format("2006-01-02T15:04:05.000000Z")
		parsed, _ := time.Parse(time.RFC3339Nano, ts)
		statuses := []audit.Status{audit.StatusSuccess, audit.StatusFailure, audit.StatusAttempt}
		classes := []audit.Classification{audit.ClassPHI, audit.ClassInternal, ""}
		sessionID := fmt.Sprintf("sess-%d", rng.IntN(4))
		ip := fmt.Sprintf("10.0.0.%d", rng.IntN(3))
		e := audit.Event{
			Timestamp: ts, Time: parsed,
			Action:             searchActions[rng.IntN(len(searchActions))],
			Status:             statuses[rng.IntN(len(statuses))],
			OrganizationID:     searchOrgs[rng.IntN(len(searchOrgs))],
			PrincipalID:        searchPrincipals[rng.IntN(len(searchPrincipals))],
			TargetResourceType: searchTypes[rng.IntN(len(searchTypes))],
			TargetResourceID:   fmt.Sprintf("r-%d", rng.IntN(6)),
			DataClassification: classes[rng.IntN(len(classes))],
			CorrelationID:      fmt.Sprintf("corr-%d", rng.IntN(8)),
			SessionContext:     &audit.SessionContext{SessionID: sessionID, IPAddress: ip, UserAgent: "storetest"},
			Details: fmt.Appendf(nil, `{"sessionContext":{"sessionId":%q,"ipAddress":%q,"userAgent":"storetest"},"n":%d}`,
				sessionID, ip, i),
		}
		out[i] = record(e, fmt.Sprintf("search-%d-%d", seed, i))
	}
	return out
}

// expected computes a query's answer from all stored events by brute force.
func expected(all []audit.StoredEvent, q audit.EventQuery) []int64 {
	var match []audit.StoredEvent
	for i := range all {
		if q.Matches(&all[i]) && (q.After == nil || q.Order.Before(*q.After, audit.PositionOf(&all[i]))) {
			match = append(match, all[i])
		}
	}
	slices.SortFunc(match, func(a, b audit.StoredEvent) int {
		if q.Order.Before(audit.PositionOf(&a), audit.PositionOf(&b)) {
			return -1
		}
		return 1
	})
	ids := make([]int64, 0, q.Limit)
	for i := 0; i < len(match) && i < q.Limit; i++ {
		ids = append(ids, match[i].Seq)
	}
	return ids
}

func seqs(events []audit.StoredEvent) []int64 {
	out := make([]int64, len(events))
	for i := range events {
		out[i] = events[i].Seq
	}
	return out
}

func search(t *testing.T, s audit.EventReader, q audit.EventQuery) []audit.StoredEvent {
	t.Helper()
	got, err := s.SearchEvents(ctxFor(t), q)
	if err != nil {
		t.Fatalf("search %+v: %v", q, err)
	}
	return got
}

func storeSearchRecords(t *testing.T, s SearchStore, recs []audit.Record) []audit.StoredEvent {
	t.Helper()
	for i := 0; i < len(recs); i += 250 {
		store(t, s, audit.Batch{Records: recs[i:min(i+250, len(recs))]})
	}
	return listAll(t, s)
}

func testSearchFilters(t *testing.T, s SearchStore) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	all := storeSearchRecords(t, s, searchRecords(1, 600, base))
	mid := all[300].Time
	queries := map[string]audit.EventQuery{
		"everything":          {},
		"one org":             {Organizations: []string{"org-a"}},
		"two orgs":            {Organizations: []string{"org-a", "org-c"}},
		"principal":           {PrincipalID: "alice"},
		"exact action":        {Action: "auth.login"},
		"action prefix":       {Action: "auth.*"},
		"prefix is a segment": {Action: "auth.login.*"},
		"status":              {Status: audit.StatusFailure},
		"target type":         {TargetResourceType: "Patient"},
		"target":              {TargetResourceType: "Patient", TargetResourceID: "r-3"},
		"classification":      {DataClassification: audit.ClassPHI},
		"correlation":         {CorrelationID: "corr-5"},
		"session":             {SessionID: "sess-2"},
		"ip address":          {IPAddress: "10.0.0.1"},
		"since":               {Since: mid},
		"until":               {Until: mid},
		"window":              {Since: all[100].Time, Until: all[200].Time},
		"bounds between µs":   {Since: all[100].Time.Add(500 * time.Nanosecond), Until: all[200].Time.Add(500 * time.Nanosecond)},
		"exclude audit.":      {ExcludeActionPrefixes: []string{"audit."}},
		"combined": {Organizations: []string{"org-a", "org-b"}, Action: "auth.*", Status: audit.StatusSuccess,
			Since: all[50].Time, Until: all[550].Time, ExcludeActionPrefixes: []string{"audit."}},
		"combined 2": {PrincipalID: "bob", DataClassification: audit.ClassPHI, IPAddress: "10.0.0.2"},
		"no match":   {Organizations: []string{"org-z"}},
	}
	for name, q := range queries {
		for _, order := range []audit.Order{audit.OrderDesc, audit.OrderAsc} {
			q := q
			q.Order, q.Limit = order, 1000
			want := expected(all, q)
			got := seqs(search(t, s, q))
			if !slices.Equal(got, want) {
				t.Errorf("%s (%s): got %d events %v…, want %d %v…", name, order, len(got), head(got), len(want), head(want))
			}
			if name != "no match" && name != "everything" && len(want) == len(all) {
				t.Errorf("%s: the filter matched every row, so it tests nothing", name)
			}
		}
	}
	// Events come back whole.
	got := search(t, s, audit.EventQuery{Order: audit.OrderAsc, Limit: 1})
	if len(got) != 1 || got[0].RecordHash != got[0].ComputeRecordHash() || got[0].SessionContext == nil {
		t.Errorf("first event not read back whole: %+v", got)
	}
}

func head(ids []int64) []int64 { return ids[:min(len(ids), 8)] }

// walk pages through a query with limit page, returning every Seq seen.
func walk(t *testing.T, s audit.EventReader, q audit.EventQuery, page int, between func()) []int64 {
	t.Helper()
	q.Limit = page
	var seen []int64
	for {
		events := search(t, s, q)
		seen = append(seen, seqs(events)...)
		if len(events) < page {
			return seen
		}
		last := audit.PositionOf(&events[len(events)-1])
		q.After = &last
		if between != nil {
			between()
		}
	}
}

func testSearchPaging(t *testing.T, s SearchStore) {
	all := storeSearchRecords(t, s, searchRecords(2, 500, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)))
	for _, q := range []audit.EventQuery{{}, {Organizations: []string{"org-b"}}, {Action: "auth.*", Status: audit.StatusSuccess}} {
		for _, order := range []audit.Order{audit.OrderDesc, audit.OrderAsc} {
			q.Order = order
			full := q
			full.Limit = 1000
			want := expected(all, full)
			for _, page := range []int{1, 7, 100} {
				if got := walk(t, s, q, page, nil); !slices.Equal(got, want) {
					t.Errorf("%+v page %d: walked %d events, want %d", q, page, len(got), len(want))
				}
			}
		}
	}
}

// testSearchConcurrentInsert pages through a window while another goroutine
// inserts into it: no event is seen twice, none that existed at the start
// is missed.
func testSearchConcurrentInsert(t *testing.T, s SearchStore) {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	before := storeSearchRecords(t, s, searchRecords(3, 400, base))
	for _, order := range []audit.Order{audit.OrderDesc, audit.OrderAsc} {
		stop := make(chan struct{})
		var inserter sync.WaitGroup
		inserted := 0
		inserter.Go(func() {
			// Batches land all over the window, ahead of and behind the pages.
			for inserted < 40 {
				select {
				case <-stop:
					return
				default:
				}
				inserted++
				at := base.Add(time.Duration(inserted%8) * 12 * time.Hour)
				recs := searchRecords(uint64(1000*len(order)+inserted), 10, at)
				if _, err := s.StoreBatch(ctxFor(t), audit.Batch{Records: recs}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		seen := walk(t, s, audit.EventQuery{Order: order}, 13, func() { time.Sleep(time.Millisecond) })
		close(stop)
		inserter.Wait()
		if inserted == 0 {
			t.Fatalf("%s: nothing was inserted while paging", order)
		}
		counts := map[int64]int{}
		for _, id := range seen {
			counts[id]++
			if counts[id] == 2 {
				t.Errorf("%s: event %d seen twice", order, id)
			}
		}
		for _, e := range before {
			if counts[e.Seq] == 0 {
				t.Errorf("%s: event %d existed at the start and was missed", order, e.Seq)
			}
		}
	}
}

func testGetEventBySeq(t *testing.T, s SearchStore) {
	all := storeSearchRecords(t, s, searchRecords(4, 10, time.Now().Add(-time.Hour)))
	got, err := s.GetEventBySeq(ctxFor(t), all[3].Seq)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, all[3].Record, got)
	_, err = s.GetEventBySeq(ctxFor(t), all[9].Seq+1000)
	wantCode(t, "get a missing seq", err, audit.CodeNotFound)
}

func testSearchBadQueries(t *testing.T, s SearchStore) {
	now := time.Now()
	for name, q := range map[string]audit.EventQuery{
		"limit 0":              {Order: audit.OrderDesc},
		"limit too big":        {Order: audit.OrderDesc, Limit: audit.MaxQueryLimit + 1},
		"no order":             {Limit: 10},
		"since after until":    {Order: audit.OrderDesc, Limit: 10, Since: now, Until: now.Add(-time.Hour)},
		"inner wildcard":       {Order: audit.OrderDesc, Limit: 10, Action: "auth.*.x"},
		"bare wildcard":        {Order: audit.OrderDesc, Limit: 10, Action: "auth*"},
		"empty org list":       {Order: audit.OrderDesc, Limit: 10, Organizations: []string{}},
		"exclusion not prefix": {Order: audit.OrderDesc, Limit: 10, ExcludeActionPrefixes: []string{"audit"}},
	} {
		_, err := s.SearchEvents(ctxFor(t), q)
		wantCode(t, name, err, audit.CodeInvalid)
	}
}
