package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

// An ingest key scoped to org-a sends an event of org-b and one with no
// organizationId: each is rejected as forbidden_organization and kept as a
// dead letter with its exact bytes, nothing of it is stored, and an event of
// org-a in the same request is stored. A key for every organisation may send
// an event without one.
func TestIngestKeyStaysInItsOrganizations(t *testing.T) {
	for _, kind := range authzStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			f := newAuthzFixture(t, kind.open(t), authzOptions{})
			ingest := f.tokens[audit.RoleIngest]
			before := f.counts(t)
			orgBEvents := f.db.count(t, "SELECT count(*) FROM audit_log WHERE organization_id = 'org-b'")
			noOrg := f.db.count(t, "SELECT count(*) FROM audit_log WHERE coalesce(organization_id, '') = ''")

			foreign, none := f.eventOf(otherOrg), f.eventOf("")
			for _, payload := range [][]byte{foreign, none} {
				rec := f.serve(authzRequest{method: "POST", target: "/v1/events", body: string(payload), token: ingest})
				if rec.Code != http.StatusUnprocessableEntity {
					t.Fatalf("single event: %d, want 422: %s", rec.Code, rec.Body)
				}
				checkForbiddenOrganization(t, rec.Body.Bytes(), 0)
			}
			own, foreign2, none2 := f.eventOf(scopeOrg), f.eventOf(otherOrg), f.eventOf("")
			batch := "[" + string(own) + "," + string(foreign2) + "," + string(none2) + "]"
			rec := f.serve(authzRequest{method: "POST", target: "/v1/events", body: batch, token: ingest})
			var resp ingestResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != 200 || resp.Stored != 1 || resp.Rejected != 2 {
				t.Fatalf("batch of org-a, org-b, none: %d %+v (%v), want 200, 1 stored, 2 rejected", rec.Code, resp, err)
			}
			checkForbiddenOrganization(t, rec.Body.Bytes(), 1, 2)

			after := f.counts(t)
			if after.events != before.events+1 || after.deadLetters != before.deadLetters+4 {
				t.Errorf("events %d -> %d, dead letters %d -> %d; want +1 (the org-a event) and +4",
					before.events, after.events, before.deadLetters, after.deadLetters)
			}
			if n := f.db.count(t, "SELECT count(*) FROM audit_log WHERE organization_id = 'org-b'"); n != orgBEvents {
				t.Errorf("org-b events %d -> %d: an org-a ingest key stored one", orgBEvents, n)
			}
			if n := f.db.count(t, "SELECT count(*) FROM audit_log WHERE coalesce(organization_id, '') = ''"); n != noOrg {
				t.Errorf("events without an organisation %d -> %d: an org-a ingest key stored one", noOrg, n)
			}
			kept := map[string]bool{}
			for _, d := range f.allDeadLetters(t) {
				if d.Reason == audit.ReasonForbiddenOrganization {
					kept[string(d.Payload)] = true
				}
			}
			for _, p := range [][]byte{foreign, none, foreign2, none2} {
				if !kept[string(p)] {
					t.Errorf("no forbidden_organization dead letter holds %s", clip(string(p), 120))
				}
			}

			rec = f.serve(authzRequest{method: "POST", target: "/v1/events", body: string(f.eventOf("")), token: f.admin})
			if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"stored":1`)) {
				t.Errorf("a key for every organisation sends an event without one: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// checkForbiddenOrganization checks that the results at the given indexes
// (all of them when none is given) are forbidden_organization rejections.
func checkForbiddenOrganization(t *testing.T, body []byte, indexes ...int) {
	t.Helper()
	var resp ingestResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("answer: %v: %s", err, body)
	}
	for _, i := range indexes {
		o := resp.Results[i]
		if o.Status != pipeline.StatusRejected || o.Reason != audit.ReasonForbiddenOrganization || !strings.Contains(o.Message, "organization") {
			t.Errorf("result %d: %+v, want rejected as %s", i, o, audit.ReasonForbiddenOrganization)
		}
	}
}

// What a key scoped to org-a lists — events, alerts, dead letters, keys —
// holds org-a's rows and none of org-b's, when it names no organisation.
func TestScopedListsHideOtherOrganizations(t *testing.T) {
	for _, kind := range authzStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			f := newAuthzFixture(t, kind.open(t), authzOptions{})
			for _, tc := range []struct {
				role   audit.Role
				target string
			}{
				{audit.RoleReader, "/v1/events"},
				{audit.RoleAuditor, "/v1/events/export?format=json"},
				{audit.RoleReader, "/v1/alerts"},
				{audit.RoleReader, "/v1/alerts/statistics"},
				{audit.RoleOperator, "/v1/dead-letters"},
				{audit.RoleAdmin, "/v1/keys"},
			} {
				rec := f.serve(authzRequest{method: "GET", target: tc.target, token: f.tokens[tc.role]})
				body := rec.Body.String()
				switch {
				case rec.Code != http.StatusOK:
					t.Errorf("GET %s as %s: %d %s", tc.target, tc.role, rec.Code, clip(body, 200))
				case strings.Contains(body, otherOrg):
					t.Errorf("GET %s as %s (org-a) shows org-b: %s", tc.target, tc.role, clip(body, 300))
				case !strings.Contains(body, scopeOrg) && !strings.Contains(body, `"total":1,`):
					t.Errorf("GET %s as %s (org-a) shows nothing of org-a: %s", tc.target, tc.role, clip(body, 300))
				}
			}
			rec := f.serve(authzRequest{method: "GET", target: "/v1/keys", token: f.admin})
			if !strings.Contains(rec.Body.String(), otherOrg) {
				t.Errorf("an admin for every organisation does not see org-b's key: %s", clip(rec.Body.String(), 300))
			}
		})
	}
}
