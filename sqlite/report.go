package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

var _ report.Store = (*Store)(nil)

// reportSQL builds one report statement. Only fixed SQL text is appended;
// every value — the criteria, the definitions' word lists (as JSON arrays
// read with json_each), the time zone offsets — goes in as a parameter.
type reportSQL struct {
	args []any
	// local and legal are the expressions of an event's local time (Unix
	// seconds shifted by its organisation's UTC offset) and legal basis:
	// the columns of the materialised rows, or the full expressions (local
	// built from zones when first used).
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

// arg binds v; parameters are numbered (?NNN), so that an expression may
// appear twice in a statement with its parameters bound once.
func (q *reportSQL) arg(v any) string {
	q.args = append(q.args, v)
	return "?" + strconv.Itoa(len(q.args))
}

// list binds a list as one JSON array parameter.
func (q *reportSQL) list(vs any) string {
	data, _ := json.Marshal(vs) // strings and integers always encode
	return `(SELECT value FROM json_each(` + q.arg(string(data)) + `))`
}

// filterWhere is the criteria's conditions on audit_log; the organisations
// are listed one parameter each, so that the (organization_id, timestamp)
// index serves them.
func (q *reportSQL) filterWhere(f report.Filter) string {
	var conds []string
	if f.Organizations != nil {
		marks := make([]string, len(f.Organizations))
		for i, o := range f.Organizations {
			marks[i] = q.arg(o)
		}
		if len(marks) == 0 {
			conds = append(conds, "0")
		} else {
			conds = append(conds, `organization_id IN (`+strings.Join(marks, ", ")+`)`)
		}
	}
	conds = append(conds, `timestamp >= `+q.arg(f.From.UnixMicro()), `timestamp < `+q.arg(f.To.UnixMicro()))
	if f.Actions != nil {
		var exact []string
		var alts []string
		for _, a := range f.Actions {
			if p, ok := report.ActionFilterPrefix(a); ok {
				alts = append(alts, `substr(action, 1, length(`+q.arg(p)+`)) = `+q.arg(p))
			} else {
				exact = append(exact, a)
			}
		}
		if exact != nil {
			alts = append(alts, `action IN `+q.list(exact))
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
			conds = append(conds, l.column+` IN `+q.list(l.values))
		}
	}
	return strings.Join(conds, " AND ")
}

// localExpr is an event's local time in seconds: its Unix time plus the UTC
// offset its organisation's zone had at that instant.
func (q *reportSQL) localExpr(z report.Zones) string {
	const epoch = `(timestamp / 1000000)`
	if len(z.Groups) == 0 {
		return epoch + ` + ` + q.offsetExpr(z.Default)
	}
	var b strings.Builder
	b.WriteString("CASE")
	for _, g := range z.Groups {
		b.WriteString(` WHEN organization_id IN ` + q.list(g.Organizations) + ` THEN ` + epoch + ` + ` + q.offsetExpr(g.Segments))
	}
	b.WriteString(` ELSE ` + epoch + ` + ` + q.offsetExpr(z.Default) + ` END`)
	return b.String()
}

func (q *reportSQL) offsetExpr(segs []report.Segment) string {
	if len(segs) == 1 {
		return q.arg(int64(segs[0].Offset))
	}
	var b strings.Builder
	b.WriteString("(CASE")
	for _, s := range segs[:len(segs)-1] {
		b.WriteString(` WHEN timestamp < ` + q.arg(s.Until.UnixMicro()) + ` THEN ` + q.arg(int64(s.Offset)))
	}
	b.WriteString(` ELSE ` + q.arg(int64(segs[len(segs)-1].Offset)) + ` END)`)
	return b.String()
}

// legalExpr is the legal basis an event's details state (see report.LegalBasis).
const legalExpr = `CASE
	WHEN json_type(details, '$.legalBasis') = 'text' AND json_extract(details, '$.legalBasis') <> ''
		THEN json_extract(details, '$.legalBasis')
	WHEN json_type(details, '$.gdprContext.legalBasis') = 'text' AND json_extract(details, '$.gdprContext.legalBasis') <> ''
		THEN json_extract(details, '$.gdprContext.legalBasis')
	ELSE 'unspecified' END`

// verbExpr is the action's last segment: rtrim strips the trailing run of
// characters other than '.', which leaves the action up to its last dot.
const verbExpr = `lower(substr(action, length(rtrim(action, replace(action, '.', ''))) + 1))`

// familyExpr is the action's first segment.
const familyExpr = `lower(CASE WHEN instr(action, '.') > 0 THEN substr(action, 1, instr(action, '.') - 1) ELSE action END)`

// cond renders a condition. Nullable columns are coalesced, so that NOT of
// a condition on a missing value holds, as report.Cond.Match says. lower
// folds ASCII only, as report's definitions do.
func (q *reportSQL) cond(c report.Cond) string {
	switch c.Op {
	case report.OpTrue:
		return "1"
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
		return verbExpr + ` IN ` + q.list(c.Values)
	case report.OpFamilyIn:
		return familyExpr + ` IN ` + q.list(c.Values)
	case report.OpSegmentIn:
		return `EXISTS (SELECT 1 FROM json_each(` + q.arg(jsonList(c.Values)) +
			`) WHERE instr('.' || lower(action) || '.', '.' || value || '.') > 0)`
	case report.OpClassIn:
		return `COALESCE(data_classification, '') IN ` + q.list(c.Values)
	case report.OpTypeIn:
		return `COALESCE(target_resource_type, '') IN ` + q.list(c.Values)
	case report.OpStatusIn:
		return `status IN ` + q.list(c.Values)
	case report.OpHasPrincipal:
		return `COALESCE(principal_id, '') <> ''`
	case report.OpHasResource:
		return `COALESCE(target_resource_id, '') <> ''`
	case report.OpActionPrefix:
		return `substr(action, 1, length(` + q.arg(c.Values[0]) + `)) = ` + q.arg(c.Values[0])
	case report.OpLocalHourIn:
		return q.dim(report.DimLocalHour) + ` IN ` + q.list(c.Hours)
	}
	panic(fmt.Sprintf("sqlite: report condition %d has no SQL", c.Op))
}

func jsonList(vs []string) string {
	data, _ := json.Marshal(vs)
	return string(data)
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
		return `(CASE WHEN target_resource_id <> '' THEN CAST(length(COALESCE(target_resource_type, '')) AS TEXT) || ':' ||
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
	panic(fmt.Sprintf("sqlite: report dimension %d has no SQL", d))
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
		return "count(DISTINCT CASE WHEN " + q.cond(m.If) + " THEN " + q.dim(m.Of) + " END)"
	case report.MinTime, report.MaxTime:
		fn := "min"
		if m.Kind == report.MaxTime {
			fn = "max"
		}
		ts := "timestamp"
		if !m.If.IsTrue() {
			ts = `CASE WHEN ` + q.cond(m.If) + ` THEN timestamp END`
		}
		return `COALESCE(` + fn + `(` + ts + `), 0)`
	}
	panic(fmt.Sprintf("sqlite: report measure %d has no SQL", m.Kind))
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
	b.WriteString(`WITH p AS MATERIALIZED (SELECT timestamp, action, status, principal_id, target_resource_type,
		target_resource_id, data_classification, ` + legalExpr + ` AS legal_basis, ` + local + ` AS local_s
		FROM audit_log WHERE ` + where + `)`)
	for i, a := range aggs {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(q.branch(i, a, keys, measures))
	}
	rows, err := s.reader.QueryContext(ctx, b.String(), q.args...)
	if err != nil {
		return nil, classify("compute report", err)
	}
	defer rows.Close()
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
	for rows.Next() {
		if err := rows.Scan(scan...); err != nil {
			return nil, classify("compute report", err)
		}
		a := aggs[idx]
		out[idx] = append(out[idx], report.Group{Keys: append([]string(nil), keyVals[:len(a.GroupBy)]...),
			Values: append([]int64(nil), vals[:len(a.Measures)]...)})
	}
	if err := rows.Err(); err != nil {
		return nil, classify("compute report", err)
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
			cols = append(cols, `COALESCE(CAST(`+q.dim(a.GroupBy[k])+` AS TEXT), '')`)
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
			cols = append(cols, `0`)
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
			order = append(order, `k`+strconv.Itoa(k))
		}
		sql = `SELECT * FROM (` + sql + ` ORDER BY ` + strings.Join(order, ", ") + ` LIMIT ` + q.arg(a.Top) + `)`
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
		sql += ` AND (timestamp, id) > (` + q.arg(after.Time.UnixMicro()) + `, ` + q.arg(after.Seq) + `)`
	}
	sql += ` ORDER BY timestamp, id LIMIT ` + q.arg(limit)
	rows, err := s.reader.QueryContext(ctx, sql, q.args...)
	if err != nil {
		return nil, classify("read report events", err)
	}
	events, err := scanEvents(rows, min(limit, 1024))
	if err != nil {
		return nil, classify("read report events", err)
	}
	return events, nil
}

// IntegrityViolationTimes reads the event times of the dead letters refused
// as integrity violations whose payload names one of orgs (nil: all).
func (s *Store) IntegrityViolationTimes(ctx context.Context, orgs []string) ([]string, error) {
	q := &reportSQL{}
	sql := `SELECT ts FROM (SELECT
			CASE WHEN json_valid(p) THEN CASE WHEN json_type(p, '$.timestamp') = 'text'
				THEN json_extract(p, '$.timestamp') END END AS ts,
			CASE WHEN json_valid(p) THEN CASE WHEN json_type(p, '$.organizationId') = 'text'
				THEN json_extract(p, '$.organizationId') END END AS org
		FROM (SELECT CAST(payload AS TEXT) AS p FROM audit_dead_letter WHERE reason = ` + q.arg(audit.ReasonIntegrityViolation) + `))
		WHERE ts IS NOT NULL`
	if orgs != nil {
		sql += ` AND org IN ` + q.list(orgs)
	}
	rows, err := s.reader.QueryContext(ctx, sql, q.args...)
	if err != nil {
		return nil, classify("read integrity violations", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ts string
		if err := rows.Scan(&ts); err != nil {
			return nil, classify("read integrity violations", err)
		}
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read integrity violations", err)
	}
	return out, nil
}
