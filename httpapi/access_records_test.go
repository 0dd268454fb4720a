package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// recordOf waits until the store holds an access record of principal with
// action and returns it.
func (f *authzFixture) recordOf(t *testing.T, principal, action string) audit.StoredEvent {
	t.Helper()
	var found audit.StoredEvent
	testenv.Eventually(t, 10*time.Second, action+" of "+principal, func() bool {
		events, err := f.db.store.SearchEvents(context.Background(), audit.EventQuery{PrincipalID: principal,
			Action: action, Since: time.Now().Add(-time.Hour), Order: audit.OrderDesc, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 1 {
			found = events[0]
		}
		return len(events) == 1
	})
	return found
}

// searchIDs answers a search as caller and returns the ids of the events.
func (f *authzFixture) searchIDs(t *testing.T, token, query string) []int64 {
	t.Helper()
	rec := f.serve(authzRequest{method: "GET", target: "/v1/events?" + query, token: token})
	var page struct {
		Events []struct {
			ID int64 `json:"id"`
		} `json:"events"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/events?%s: %d (%v) %s", query, rec.Code, err, clip(rec.Body.String(), 200))
	}
	ids := make([]int64, len(page.Events))
	for i, e := range page.Events {
		ids[i] = e.ID
	}
	return ids
}

// A search leaves an audit.access.query record (the key as principal, the
// organisation read, the route, filters and result count) that an auditor
// reads and a reader never sees; a 403 leaves an audit.access.denied; a
// refused request with a NUL or a 300 KB path is recorded too.
func TestAccessRecords(t *testing.T) {
	for _, kind := range authzStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			f := newAuthzFixture(t, kind.open(t), authzOptions{records: true})
			reader, auditor := f.tokens[audit.RoleReader], f.tokens[audit.RoleAuditor]
			readerID := "key:" + f.keyIDs[audit.RoleReader]

			if ids := f.searchIDs(t, reader, "organizationId=org-a&order=asc"); len(ids) != 1 || ids[0] != f.seeds[scopeOrg].event {
				t.Fatalf("reader's search: %v, want org-a's event %d", ids, f.seeds[scopeOrg].event)
			}
			rec := f.recordOf(t, readerID, access.ActionQuery)
			var details struct {
				Route       string              `json:"route"`
				Filters     map[string][]string `json:"filters"`
				ResultCount int                 `json:"resultCount"`
				Role        string              `json:"role"`
			}
			if err := json.Unmarshal(rec.Details, &details); err != nil {
				t.Fatalf("details %s: %v", rec.Details, err)
			}
			if rec.OrganizationID != scopeOrg || rec.Status != audit.StatusSuccess || details.Route != "GET /v1/events" ||
				details.ResultCount != 1 || details.Role != "reader" ||
				strings.Join(details.Filters["organizationId"], ",") != scopeOrg || strings.Join(details.Filters["order"], ",") != "asc" {
				t.Errorf("access record: org %q, status %s, details %s", rec.OrganizationID, rec.Status, rec.Details)
			}

			recordSeq := strconv.FormatInt(rec.Seq, 10)
			byAuditor := f.searchIDs(t, auditor, "action=audit.access.query&principalId="+url.QueryEscape(readerID))
			if len(byAuditor) == 0 || byAuditor[len(byAuditor)-1] != rec.Seq && byAuditor[0] != rec.Seq {
				t.Errorf("auditor's search of access records: %v, want record %d", byAuditor, rec.Seq)
			}
			for _, q := range []string{"action=audit.access.query", "action=audit.access.*", "action=audit.*",
				"principalId=" + url.QueryEscape(readerID)} {
				if ids := f.searchIDs(t, reader, q); len(ids) != 0 {
					t.Errorf("reader's search %s shows access records %v", q, ids)
				}
			}
			if got := f.serve(authzRequest{method: "GET", target: "/v1/events/" + recordSeq, token: reader}); got.Code != http.StatusNotFound {
				t.Errorf("reader reads access record %s: %d, want 404", recordSeq, got.Code)
			}
			if got := f.serve(authzRequest{method: "GET", target: "/v1/events/" + recordSeq, token: auditor}); got.Code != http.StatusOK {
				t.Errorf("auditor reads access record %s: %d, want 200", recordSeq, got.Code)
			}

			if got := f.serve(authzRequest{method: "GET", target: "/v1/events/export", token: reader}); got.Code != http.StatusForbidden {
				t.Fatalf("reader exports: %d, want 403", got.Code)
			}
			denied := f.recordOf(t, readerID, access.ActionDenied)
			if denied.Status != audit.StatusFailure || denied.OrganizationID != scopeOrg ||
				!strings.Contains(denied.OutcomeDescription, "forbidden") ||
				!strings.Contains(string(denied.Details), `"deniedRoute":"GET /v1/events/export"`) ||
				!strings.Contains(string(denied.Details), `"httpStatus":403`) {
				t.Errorf("denied record: %s %s %q %s", denied.Status, denied.OrganizationID, denied.OutcomeDescription, denied.Details)
			}

			before := f.db.count(t, "SELECT count(*) FROM audit_log WHERE principal_id = 'anonymous'")
			for _, path := range []string{"/v1/alerts/%00", "/v1/alerts/" + strings.Repeat("x", 300<<10)} {
				if got := f.serve(authzRequest{method: "GET", target: path}); got.Code != http.StatusUnauthorized {
					t.Errorf("GET %s without a key: %d, want 401", clip(path, 40), got.Code)
				}
			}
			f.stopRecords()
			if n := f.db.count(t, "SELECT count(*) FROM audit_log WHERE principal_id = 'anonymous'"); n != before+2 {
				t.Errorf("refusals of hostile paths recorded: %d, want 2", n-before)
			}
			if f.records.Lost() != 0 {
				t.Errorf("%d access records lost", f.records.Lost())
			}
		})
	}
}
