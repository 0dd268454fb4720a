package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

var _ report.Store = (*Store)(nil)

// reportSQL builds one report statement. Only fixed SQL text is appended;
// every value — the criteria, the definitions' word lists, the time zone
// offsets — goes in as a $n parameter.
type reportSQL struct {
	args []any
	// local and legal are the expressions of an event's local time (Unix
	// seconds shifted by its organisation's UTC offset) and legal basis:
	// the columns of the materialised rows, or the full expressions (local
	// built from zones when first used) on
	// audit_log itself.
	local, legal string
	zones        report.Zones
}

// localSQL is the local time expression, built on first use so that no
// parameter is bound that the statement does not use.
func (q *reportSQL) localSQL() string {
	if q.local == "" {
		q.local = q.localExpr(q.zones)
	}
	return q.local
}

func (q *reportSQL) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// filterWhere is the criteria's conditions on audit_log. organization_id
// and "timestamp" lead, for the (organization_id, "timestamp") index.
func (q *reportSQL) filterWhere(f report.Filter) string {
	var conds []string
	switch {
	case len(f.Organizations) == 1:
		// Equality, not = ANY: with it the planner walks the
		// (organization_id, "timestamp") index in time order for a listing,
		// instead of the whole period's time index.
		conds = append(conds, `organization_id = `+q.arg(f.Organizations[0]))
	case f.Organizations != nil:
		conds = append(conds, `organization_id = ANY(`+q.arg(f.Organizations)+`)`)
	}
	conds = append(conds, `"timestamp" >= `+q.arg(f.From), `"timestamp" < `+q.arg(f.To))
	if f.Actions != nil {
		var exact, alts []string
		for _, a := range f.Actions {
			if p, ok := report.ActionFilterPrefix(a); ok {
				alts = append(alts, `starts_with(action, `+q.arg(p)+`)`)
			} else {
				exact = append(exact, a)
			}
		}
		if exact != nil {
			alts = append(alts, `action = ANY(`+q.arg(exact)+`)`)
		}
		conds = append(conds, "("+strings.Join(alts, " OR ")+")")
	}
	for _, l := range []struct {
		column string
		values []string
	}{
		{"principal_id", f.PrincipalIDs}, {"status", f.Statuses},
		{"data_classification", f.DataClassifications}, {"target_resource_type", f.ResourceTypes},
	} {
		if l.values != nil {
			conds = append(conds, l.column+` = ANY(`+q.arg(l.values)+`)`)
		}
	}
	return strings.Join(conds, " AND ")
}

// localExpr is an event's local time in seconds: its Unix time plus the UTC
// offset its organisation's zone had at that instant.
func (q *reportSQL) localExpr(z report.Zones) string {
	const epoch = `floor(extract(epoch FROM "timestamp"))::bigint`
	if len(z.Groups) == 0 {
		return epoch + ` + ` + q.offsetExpr(z.Default)
	}
	var b strings.Builder
	b.WriteString("CASE")
	for _, g := range z.Groups {
		b.WriteString(` WHEN organization_id = ANY(` + q.arg(g.Organizations) + `) THEN ` + epoch + ` + ` + q.offsetExpr(g.Segments))
	}
	b.WriteString(` ELSE ` + epoch + ` + ` + q.offsetExpr(z.Default) + ` END`)
	return b.String()
}

func (q *reportSQL) offsetExpr(segs []report.Segment) string {
	if len(segs) == 1 {
		return q.arg(int64(segs[0].Offset)) + `::bigint`
	}
	var b strings.Builder
	b.WriteString("(CASE")
	for _, s := range segs[:len(segs)-1] {
		b.WriteString(` WHEN "timestamp" < ` + q.arg(s.Until) + ` THEN ` + q.arg(int64(s.Offset)) + `::bigint`)
	}
	b.WriteString(` ELSE ` + q.arg(int64(segs[len(segs)-1].Offset)) + `::bigint END)`)
	return b.String()
}

// legalExpr is the legal basis an event's details state (see report.LegalBasis).
const legalExpr = `CASE
	WHEN json_typeof(details->'legalBasis') = 'string' AND details->>'legalBasis' <> '' THEN details->>'legalBasis'
	WHEN json_typeof(details->'gdprContext'->'legalBasis') = 'string' AND details->'gdprContext'->>'legalBasis' <> ''
		THEN details->'gdprContext'->>'legalBasis'
	ELSE 'unspecified' END`

// cond renders a condition. Nullable columns are coalesced, so that NOT of
// a condition on a missing value holds, as report.Cond.Match says.
func (q *reportSQL) cond(c report.Cond) string {
	switch c.Op {
	case report.OpTrue:
		return "TRUE"
	case report.OpAnd, report.OpOr:
		sep := " AND "
		if c.Op == report.OpOr {
			sep = " OR "
		}
		parts := make([]string, len(c.Args))
		for i, a := range c.Args {
			parts[i] = q.cond(a)
		}
		return "(" + strings.Join(parts, sep) + ")"
	case report.OpNot:
		return "NOT " + q.cond(c.Args[0])
	case report.OpVerbIn:
		return `lower(split_part(action, '.', -1) COLLATE "C") = ANY(` + q.arg(c.Values) + `)`
	case report.OpFamilyIn:
		return `lower(split_part(action, '.', 1) COLLATE "C") = ANY(` + q.arg(c.Values) + `)`
	case report.OpSegmentIn:
		return `string_to_array(lower(action COLLATE "C"), '.') && ` + q.arg(c.Values) + `::text[]`
	case report.OpClassIn:
		return `COALESCE(data_classification, '') = ANY(` + q.arg(c.Values) + `)`
	case report.OpTypeIn:
		return `COALESCE(target_resource_type, '') = ANY(` + q.arg(c.Values) + `)`
	case report.OpStatusIn:
		return `status = ANY(` + q.arg(c.Values) + `)`
	case report.OpHasPrincipal:
		return `COALESCE(principal_id, '') <> ''`
	case report.OpHasResource:
		return `COALESCE(target_resource_id, '') <> ''`
	case report.OpActionPrefix:
		return `starts_with(action, ` + q.arg(c.Values[0]) + `)`
	case report.OpLocalHourIn:
		hours := make([]int64, len(c.Hours))
		for i, h := range c.Hours {
			hours[i] = int64(h)
		}
		return q.dim(report.DimLocalHour) + ` = ANY(` + q.arg(hours) + `::bigint[])`
	}
	panic(fmt.Sprintf("postgres: report condition %d has no SQL", c.Op))
}

// dim renders a dimension: NULL when the event has no such value.
func (q *reportSQL) dim(d report.Dimension) string {
	switch d {
	case report.DimStatus:
		return "status"
	case report.DimAction:
		return "action"
	case report.DimClassification:
		return "NULLIF(data_classification, '')"
	case report.DimPrincipal:
		return "NULLIF(principal_id, '')"
	case report.DimResource:
		return `(CASE WHEN target_resource_id <> '' THEN length(COALESCE(target_resource_type, ''))::text || ':' ||
			COALESCE(target_resource_type, '') || target_resource_id END)`
	case report.DimPatient:
		return `(CASE WHEN target_resource_type = ` + q.arg(report.PatientType) + ` AND target_resource_id <> ''
			THEN target_resource_id END)`
	case report.DimLegalBasis:
		return q.legal
	case report.DimLocalHour:
		return `(((` + q.localSQL() + `) % 86400 + 86400) % 86400 / 3600)`
	case report.DimLocalDay:
		return `(((` + q.localSQL() + `) - (((` + q.localSQL() + `) % 86400 + 86400) % 86400)) / 86400)`
	case report.DimLocalHourStamp:
		return `(((` + q.localSQL() + `) - (((` + q.localSQL() + `) % 3600 + 3600) % 3600)) / 3600)`
	}
	panic(fmt.Sprintf("postgres: report dimension %d has no SQL", d))
}

func (q *reportSQL) measure(m report.Measure) string {
	switch m.Kind {
	case report.Count:
		if m.If.IsTrue() {
			return "count(*)"
		}
		return "count(*) FILTER (WHERE " + q.cond(m.If) + ")"
	case report.Distinct:
		if m.If.IsTrue() {
			return "count(DISTINCT " + q.dim(m.Of) + ")"
		}
		return "count(DISTINCT " + q.dim(m.Of) + ") FILTER (WHERE " + q.cond(m.If) + ")"
	case report.MinTime, report.MaxTime:
		fn := "min"
		if m.Kind == report.MaxTime {
			fn = "max"
		}
		ts := `"timestamp"`
		if !m.If.IsTrue() {
			ts = `CASE WHEN ` + q.cond(m.If) + ` THEN "timestamp" END`
		}
		return `COALESCE((extract(epoch FROM ` + fn + `(` + ts + `)) * 1000000)::bigint, 0)`
	}
	panic(fmt.Sprintf("postgres: report measure %d has no SQL", m.Kind))
}

// Aggregate computes every aggregation in one statement: the rows of the
// period are read once (through the organisation and time index) into a
// materialised set of the columns the report needs, and each aggregation
// groups that set. The branches are padded to the same columns and joined
// with UNION ALL; the first column says which aggregation a row belongs to.
func (s *Store) Aggregate(ctx context.Context, f report.Filter, aggs []report.Aggregation) ([][]report.Group, error) {
	if len(aggs) == 0 {
		return nil, nil
	}
	q := &reportSQL{local: "local_s", legal: "legal_basis"}
	local := q.localExpr(f.Zones)
	where := q.filterWhere(f)
	keys, measures := 0, 0
	for _, a := range aggs {
		keys, measures = max(keys, len(a.GroupBy)), max(measures, len(a.Measures))
	}
	var b strings.Builder
	b.WriteString(`WITH p AS MATERIALIZED (SELECT "timestamp", action, status, principal_id, target_resource_type,
		target_resource_id, data_classification, ` + legalExpr + ` AS legal_basis, ` + local + ` AS local_s
		FROM audit_log WHERE ` + where + `)`)
	for i, a := range aggs {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(q.branch(i, a, keys, measures))
	}
	rows, err := s.pool.Query(ctx, b.String(), q.args...)
	if err != nil {
		return nil, wrapErr("compute report", err)
	}
	out := make([][]report.Group, len(aggs))
	scan := make([]any, 1+keys+measures)
	var idx int
	keyVals := make([]string, keys)
	vals := make([]int64, measures)
	scan[0] = &idx
	for i := range keys {
		scan[1+i] = &keyVals[i]
	}
	for i := range measures {
		scan[1+keys+i] = &vals[i]
	}
	_, err = pgx.ForEachRow(rows, scan, func() error {
		a := aggs[idx]
		out[idx] = append(out[idx], report.Group{Keys: append([]string(nil), keyVals[:len(a.GroupBy)]...),
			Values: append([]int64(nil), vals[:len(a.Measures)]...)})
		return nil
	})
	if err != nil {
		return nil, wrapErr("compute report", err)
	}
	return out, nil
}

// branch is one aggregation over p, with keys and measures padded to the
// statement's widths.
func (q *reportSQL) branch(i int, a report.Aggregation, keys, measures int) string {
	cols := []string{strconv.Itoa(i) + " AS q"}
	var groupBy []string
	for k := range keys {
		if k < len(a.GroupBy) {
			d := q.dim(a.GroupBy[k])
			cols = append(cols, `COALESCE((`+d+`)::text, '')`)
			groupBy = append(groupBy, strconv.Itoa(k+2))
		} else {
			cols = append(cols, `''`)
		}
		cols[len(cols)-1] += " AS k" + strconv.Itoa(k)
	}
	for m := range measures {
		if m < len(a.Measures) {
			cols = append(cols, q.measure(a.Measures[m]))
		} else {
			cols = append(cols, `0::bigint`)
		}
		cols[len(cols)-1] += " AS m" + strconv.Itoa(m)
	}
	sql := `SELECT ` + strings.Join(cols, ", ") + ` FROM p`
	if !a.Where.IsTrue() {
		sql += ` WHERE ` + q.cond(a.Where)
	}
	if len(groupBy) > 0 {
		sql += ` GROUP BY ` + strings.Join(groupBy, ", ")
	}
	if a.Top > 0 {
		order := []string{`m0 DESC`}
		for k := range a.GroupBy {
			order = append(order, `k`+strconv.Itoa(k)+` COLLATE "C"`)
		}
		// The keys are ordered as bytes ("C"), which needs them as columns
		// of a subquery: an output alias cannot take a COLLATE.
		sql = `SELECT * FROM (SELECT * FROM (` + sql + `) g` + strconv.Itoa(i) + ` ORDER BY ` + strings.Join(order, ", ") +
			` LIMIT ` + q.arg(a.Top) + `) top` + strconv.Itoa(i)
	}
	return sql
}

// ReportEvents returns a page of the events a report lists, in (event
// time, id) order.
func (s *Store) ReportEvents(ctx context.Context, f report.Filter, where report.Cond, after *audit.Position, limit int) ([]audit.StoredEvent, error) {
	if limit < 1 || limit > audit.MaxQueryLimit {
		return nil, audit.Errorf(audit.CodeInvalid, "limit %d is outside 1..%d", limit, audit.MaxQueryLimit)
	}
	q := &reportSQL{legal: legalExpr, zones: f.Zones}
	sql := `SELECT ` + eventColumns + ` FROM audit_log WHERE ` + q.filterWhere(f)
	if !where.IsTrue() {
		sql += ` AND ` + q.cond(where)
	}
	if after != nil {
		sql += ` AND ("timestamp", id) > (` + q.arg(after.Time) + `, ` + q.arg(after.Seq) + `)`
	}
	sql += ` ORDER BY "timestamp", id LIMIT ` + q.arg(limit)
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, wrapErr("read report events", err)
	}
	out, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, wrapErr("read report events", err)
	}
	return out, nil
}

// IntegrityViolationTimes reads the event times of the dead letters refused
// as integrity violations. Such a payload passed validation, so it is UTF-8
// JSON; the subquery (OFFSET 0 keeps it from being flattened) decodes only
// the payloads of that reason.
func (s *Store) IntegrityViolationTimes(ctx context.Context, orgs []string) ([]string, error) {
	q := &reportSQL{}
	sql := `SELECT j->>'timestamp' FROM (SELECT convert_from(payload, 'UTF8')::json AS j FROM audit_dead_letter
		WHERE reason = ` + q.arg(audit.ReasonIntegrityViolation) + ` OFFSET 0) d
		WHERE json_typeof(j) = 'object' AND json_typeof(j->'timestamp') = 'string'`
	if orgs != nil {
		sql += ` AND json_typeof(j->'organizationId') = 'string' AND j->>'organizationId' = ANY(` + q.arg(orgs) + `)`
	}
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, wrapErr("read integrity violations", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrapErr("read integrity violations", err)
	}
	return out, nil
}
