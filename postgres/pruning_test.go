package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// planNode is the part of an EXPLAIN (FORMAT JSON) node the pruning test reads.
type planNode struct {
	NodeType        string     `json:"Node Type"`
	RelationName    string     `json:"Relation Name"`
	SubplansRemoved int        `json:"Subplans Removed"`
	Plans           []planNode `json:"Plans"`
}

// scanned returns the tables the plan reads and how many subplans the
// executor removed at start-up (run-time pruning).
func (n planNode) scanned() (tables []string, removed int) {
	if n.RelationName != "" {
		tables = append(tables, n.RelationName)
	}
	removed = n.SubplansRemoved
	for _, c := range n.Plans {
		t, r := c.scanned()
		tables = append(tables, t...)
		removed += r
	}
	slices.Sort(tables)
	return slices.Compact(tables), removed
}

func explainPlan(t *testing.T, raw []byte) planNode {
	t.Helper()
	var out []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", raw, err)
	}
	return out[0].Plan
}

// TestSearchPrunesPartitions runs EXPLAIN on the statement SearchEvents sends
// (searchSQL, with its parameters bound as the store binds them) over five
// monthly partitions holding events, and checks that only the partitions of
// the searched time range are read: at plan time when the planner sees the
// values (a custom plan), and at executor start-up when it does not (a
// generic plan, which pgx's statement cache gets after a few executions).
func TestSearchPrunesPartitions(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := context.Background()
	first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for m := range 5 {
		month := first.AddDate(0, m, 0)
		if err := s.createPartition(ctx, month); err != nil {
			t.Fatal(err)
		}
		g := eventgen.New(uint64(m + 1))
		g.Start = month.Add(36 * time.Hour)
		if _, err := s.StoreBatch(ctx, audit.Batch{Records: g.Records(20, "pruning")}); err != nil {
			t.Fatal(err)
		}
	}
	since, until := time.Date(2025, 2, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		q    audit.EventQuery
		want []string
	}{
		{"range over two months", audit.EventQuery{Since: since, Until: until}, []string{"audit_log_2025_02", "audit_log_2025_03"}},
		{"organisation and range", audit.EventQuery{Organizations: []string{"org-001", "org-002"}, Since: since, Until: until},
			[]string{"audit_log_2025_02", "audit_log_2025_03"}},
		{"one month, next page", audit.EventQuery{Since: first.AddDate(0, 3, 0), Until: first.AddDate(0, 4, 0),
			After: &audit.Position{Time: first.AddDate(0, 3, 20), Seq: 1 << 40}}, []string{"audit_log_2025_04"}},
		{"ascending from a month start", audit.EventQuery{Since: first.AddDate(0, 1, 0), Until: first.AddDate(0, 2, 0).Add(-time.Microsecond),
			Order: audit.OrderAsc}, []string{"audit_log_2025_02"}},
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for i, c := range cases {
		if c.q.Order == "" {
			c.q.Order = audit.OrderDesc
		}
		c.q.Limit = 100
		if err := c.q.Check(); err != nil {
			t.Fatal(err)
		}
		sql, args := searchSQL(c.q)
		t.Run(c.name+"/custom plan", func(t *testing.T) {
			var raw []byte
			if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			got, _ := explainPlan(t, raw).scanned()
			if !slices.Equal(got, c.want) {
				t.Errorf("plan reads %v, want only %v\n%s", got, c.want, raw)
			}
		})
		t.Run(c.name+"/generic plan", func(t *testing.T) {
			// A named statement with a generic plan: its parameters are not
			// known when it is planned, so pruning has to happen when it runs.
			name := "pruning_" + strconv.Itoa(i)
			if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
				t.Fatal(err)
			}
			defer conn.Exec(ctx, "RESET plan_cache_mode") //nolint:errcheck // the connection is the test's
			if _, err := conn.Conn().Prepare(ctx, name, sql); err != nil {
				t.Fatal(err)
			}
			// EXECUTE takes no bind parameters: the values go in as literals.
			literals := make([]string, len(args))
			for j, a := range args {
				literals[j] = sqlLiteral(t, a)
			}
			var raw []byte
			err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) EXECUTE "+
				pgx.Identifier{name}.Sanitize()+"("+strings.Join(literals, ", ")+")").Scan(&raw)
			if err != nil {
				t.Fatal(err)
			}
			got, removed := explainPlan(t, raw).scanned()
			if !slices.Equal(got, c.want) {
				t.Errorf("generic plan reads %v, want only %v\n%s", got, c.want, raw)
			}
			if removed == 0 {
				t.Errorf("generic plan removed no subplan at start-up: it was pruned at plan time, so this case does not test run-time pruning\n%s", raw)
			}
		})
	}
}

// sqlLiteral writes a search parameter as an SQL literal, for EXECUTE.
func sqlLiteral(t *testing.T, v any) string {
	t.Helper()
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := v.(type) {
	case string:
		return quote(v)
	case time.Time:
		return quote(v.Format(time.RFC3339Nano))
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case []string:
		quoted := make([]string, len(v))
		for i, s := range v {
			quoted[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(quoted, ", ") + "]"
	}
	t.Fatalf("no literal for %T", v)
	return ""
}
