package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// TestSearchPlansUseTheRightIndex checks with EXPLAIN QUERY PLAN that the
// searches docs/querying.md lists read the index it names and, where the
// index gives the search order, sort nothing. The organisation-scoped cases
// depend on the statistics of 006_search_indexes: without them SQLite reads
// the organisation's index and filters every event of the organisation.
func TestSearchPlansUseTheRightIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: eventgen.New(3).Records(200, "plans")}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	after := &audit.Position{Time: now, Seq: 1 << 40}
	org := []string{"org-001"}
	cases := []struct {
		name   string
		q      audit.EventQuery
		index  string
		sorted bool // the plan may sort (the index's rows are few)
	}{
		{"everything", audit.EventQuery{}, "audit_log_timestamp", false},
		{"everything, next page", audit.EventQuery{After: after}, "audit_log_timestamp", false},
		{"action prefix", audit.EventQuery{Action: "auth.*"}, "audit_log_timestamp", false},
		{"organisation", audit.EventQuery{Organizations: org}, "audit_log_organization", false},
		{"organisation, window, next page", audit.EventQuery{Organizations: org, Since: now.Add(-time.Hour),
			Until: now, After: after}, "audit_log_organization", false},
		{"principal", audit.EventQuery{PrincipalID: "user-00001"}, "audit_log_principal", false},
		{"principal in an organisation", audit.EventQuery{Organizations: org, PrincipalID: "user-00001"}, "audit_log_principal", false},
		{"correlation id in an organisation", audit.EventQuery{Organizations: org, CorrelationID: "c"}, "audit_log_correlation", true},
		{"resource in an organisation", audit.EventQuery{Organizations: org, TargetResourceType: "Patient",
			TargetResourceID: "p-1"}, "audit_log_target", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.q.Order == "" {
				c.q.Order = audit.OrderDesc
			}
			c.q.Limit = 100
			query, args := searchSQL(c.q)
			rows, err := s.reader.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "; ")
			if !strings.Contains(text, "USING INDEX "+c.index+" ") && !strings.HasSuffix(text, "USING INDEX "+c.index) {
				t.Errorf("plan %q does not read %s", text, c.index)
			}
			if !c.sorted && strings.Contains(text, "TEMP B-TREE") {
				t.Errorf("plan %q sorts: the index does not give the search order", text)
			}
		})
	}
}
