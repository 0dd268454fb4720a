package postgres

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// partitionIndex splits a partition's index name: audit_log_2026_01_x_idx.
var partitionIndex = regexp.MustCompile(`^audit_log_(?:\d{4}_\d{2}|default)_(.+)$`)

// planShape is what the index-use test reads of an EXPLAIN (FORMAT JSON) node.
type planShape struct {
	NodeType  string      `json:"Node Type"`
	IndexName string      `json:"Index Name"`
	Plans     []planShape `json:"Plans"`
}

func (n planShape) walk(fn func(planShape)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// TestSearchPlansReadIndexesInOrder checks, on a small table, that the
// searches docs/querying.md lists read the index it names in search order:
// the plan scans only that index (on each partition) and sorts nothing, so a
// page stops after `limit` rows however many match. Sequential and bitmap
// scans are switched off, as a small table would otherwise be read whole.
func TestSearchPlansReadIndexesInOrder(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := context.Background()
	g := eventgen.New(3)
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: g.Records(200, "plans")}); err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off; SET enable_bitmapscan = off"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET enable_seqscan; RESET enable_bitmapscan") //nolint:errcheck // the connection is the test's
	now := time.Now()
	after := &audit.Position{Time: now, Seq: 1 << 40}
	cases := []struct {
		name string
		q    audit.EventQuery
		// the partitions' index, without the partition's name (PostgreSQL
		// names a partition's copy of an expression index after the function)
		index string
	}{
		{"everything", audit.EventQuery{}, "timestamp_id_idx"},
		{"everything, next page", audit.EventQuery{After: after}, "timestamp_id_idx"},
		{"time window", audit.EventQuery{Since: now.Add(-24 * time.Hour), Until: now}, "timestamp_id_idx"},
		{"action prefix", audit.EventQuery{Action: "auth.*"}, "split_part_timestamp_id_idx"},
		{"longer action prefix, window", audit.EventQuery{Action: "fhir.patient.*", Since: now.Add(-time.Hour), Until: now}, "split_part_timestamp_id_idx"},
		{"exact action, next page", audit.EventQuery{Action: "data.export", After: after}, "split_part_timestamp_id_idx"},
		{"organisation", audit.EventQuery{Organizations: []string{"org-001"}}, "organization_id_timestamp_id_idx"},
		{"organisation, window, next page", audit.EventQuery{Organizations: []string{"org-001"},
			Since: now.Add(-24 * time.Hour), Until: now, After: after}, "organization_id_timestamp_id_idx"},
		{"principal", audit.EventQuery{PrincipalID: "user-00001"}, "principal_id_timestamp_id_idx"},
		{"principal, next page ascending", audit.EventQuery{PrincipalID: "user-00001", Order: audit.OrderAsc,
			After: after}, "principal_id_timestamp_id_idx"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.q.Order == "" {
				c.q.Order = audit.OrderDesc
			}
			c.q.Limit = 100
			sql, args := searchSQL(c.q)
			var raw []byte
			if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			var out []struct {
				Plan planShape `json:"Plan"`
			}
			if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
				t.Fatalf("EXPLAIN output %s: %v", raw, err)
			}
			scans := 0
			out[0].Plan.walk(func(n planShape) {
				switch {
				case strings.Contains(n.NodeType, "Sort"):
					t.Errorf("plan sorts (%s): the index does not give the search order", n.NodeType)
				case n.IndexName != "":
					scans++
					if m := partitionIndex.FindStringSubmatch(n.IndexName); m == nil || m[1] != c.index {
						t.Errorf("plan reads %s, want the partition's %s", n.IndexName, c.index)
					}
				case strings.Contains(n.NodeType, "Scan"):
					t.Errorf("plan has a %s", n.NodeType)
				}
			})
			if scans == 0 || t.Failed() {
				t.Errorf("want index scans of %s only\n%s", c.index, raw)
			}
		})
	}
}
