// Package alertsql is what both stores share of the alerts table: the steps of
// each operation (Alerts), its columns, the queries of a filter, the update of
// a changed alert and the scan of a row. The tables differ only in how they
// encode instants and tags and in how parameters are written, which a Dialect
// says; running the statements (PostgreSQL's locks and multi-row insert,
// SQLite's write transaction) is each store's own, behind DB and Tx.
package alertsql

import (
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// columns are the alerts table's columns in the order Row.Dest and Values list them.
var columns = [...]string{
	"id", "organization_id", "type", "severity", "title", "description", "source", "status",
	"dedup_key", "first_seen", "last_seen", "occurrences", "metadata", "correlation_id", "tags",
	"acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "status_note", "updated_at",
}

// Columns is the select list of an alert row.
var Columns = strings.Join(columns[:], ", ")

// changeable are the columns a raise or a transition can change.
var changeable = [...]string{
	"severity", "description", "last_seen", "occurrences", "metadata", "correlation_id", "tags",
	"status", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "status_note", "updated_at",
}

// Dialect is how one store writes parameters and encodes the columns whose
// types differ between the stores.
type Dialect struct {
	// Param is the placeholder of the n-th argument, counted from 1: "$n" or "?".
	Param func(n int) string
	// Arrays: a list of values travels as one array argument (col = ANY($n))
	// rather than as one argument each (col IN (?, ?)). With arrays a query's
	// text does not depend on how many values it lists, so a server that
	// prepares statements by their text prepares it once.
	Arrays bool
	// Time is an instant as its column stores it.
	Time func(t time.Time) any
	// Tags is the tags as their column stores them.
	Tags func(tags []string) any
}

func (d Dialect) timeOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.Time(*t)
}

// metadata passes empty metadata as SQL NULL.
func metadata(m []byte) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

// Values are the arguments of a whole row, in the order of Columns.
func (d Dialect) Values(a *audit.Alert) []any {
	return []any{a.ID, a.OrganizationID, string(a.Type), string(a.Severity), a.Title, a.Description,
		a.Source, string(a.Status), a.DedupKey, d.Time(a.FirstSeen), d.Time(a.LastSeen), a.Occurrences,
		metadata(a.Metadata), a.CorrelationID, d.Tags(a.Tags), a.AcknowledgedBy, d.timeOrNull(a.AcknowledgedAt),
		a.ResolvedBy, d.timeOrNull(a.ResolvedAt), a.StatusNote, d.Time(a.UpdatedAt)}
}

// Insert is the statement that inserts one row; Values are its arguments.
func (d Dialect) Insert() string {
	params := make([]string, len(columns))
	for i := range params {
		params[i] = d.Param(i + 1)
	}
	return "INSERT INTO alerts (" + Columns + ") VALUES (" + strings.Join(params, ", ") + ")"
}

// Update is the statement that writes every column a raise or a transition
// can change; UpdateArgs are its arguments.
func (d Dialect) Update() string {
	set := make([]string, len(changeable))
	for i, c := range changeable {
		set[i] = c + " = " + d.Param(i+1)
	}
	return "UPDATE alerts SET " + strings.Join(set, ", ") + " WHERE id = " + d.Param(len(changeable)+1)
}

// UpdateArgs are the arguments of Update for a.
func (d Dialect) UpdateArgs(a *audit.Alert) []any {
	return []any{string(a.Severity), a.Description, d.Time(a.LastSeen), a.Occurrences, metadata(a.Metadata),
		a.CorrelationID, d.Tags(a.Tags), string(a.Status), a.AcknowledgedBy, d.timeOrNull(a.AcknowledgedAt),
		a.ResolvedBy, d.timeOrNull(a.ResolvedAt), a.StatusNote, d.Time(a.UpdatedAt), a.ID}
}

// open is the query of the open alerts of keys.
func (d Dialect) open(keys []string) (string, []any) {
	q := query{d: d}
	q.in("dedup_key", keys)
	q.add("status IN ('active', 'acknowledged')")
	return "SELECT " + Columns + " FROM alerts" + q.where(), q.args
}

// get is the query of the alert with this id.
func (d Dialect) get(id string) (string, []any) {
	return "SELECT " + Columns + " FROM alerts WHERE id = " + d.Param(1), []any{id}
}

// list is the query of one page of the alerts that match f (normalised),
// newest first: f.Limit+1 rows, so that audit.AlertPage can tell whether
// another page follows.
func (d Dialect) list(f audit.AlertFilter) (string, []any) {
	q := query{d: d}
	q.filter(f)
	if f.After != "" {
		at, id, _ := audit.DecodeAlertCursor(f.After) // checked by Normalize
		q.add("(first_seen, id) < (" + q.arg(d.Time(at)) + ", " + q.arg(id) + ")")
	}
	return "SELECT " + Columns + " FROM alerts" + q.where() +
		" ORDER BY first_seen DESC, id DESC LIMIT " + q.arg(f.Limit+1), q.args
}

// statistics is the query that counts the alerts matching f by status,
// severity and type (f's Limit and After do not apply).
func (d Dialect) statistics(f audit.AlertFilter) (string, []any) {
	q := query{d: d}
	q.filter(f)
	return "SELECT status, severity, type, count(*) FROM alerts" + q.where() +
		" GROUP BY status, severity, type", q.args
}

// query builds a WHERE clause whose values only ever travel as arguments,
// never inside the SQL text.
type query struct {
	d     Dialect
	conds []string
	args  []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return q.d.Param(len(q.args))
}

func (q *query) add(cond string) { q.conds = append(q.conds, cond) }

// in adds "col is one of vals"; no values add no condition.
func (q *query) in(col string, vals []string) {
	switch {
	case len(vals) == 0:
	case q.d.Arrays:
		q.add(col + " = ANY(" + q.arg(vals) + ")")
	default:
		params := make([]string, len(vals))
		for i, v := range vals {
			params[i] = q.arg(v)
		}
		q.add(col + " IN (" + strings.Join(params, ", ") + ")")
	}
}

func (q *query) filter(f audit.AlertFilter) {
	q.in("status", stringsOf(f.Status))
	q.in("severity", stringsOf(f.Severity))
	q.in("type", stringsOf(f.Type))
	if f.OrganizationID != "" {
		q.add("organization_id = " + q.arg(f.OrganizationID))
	}
	switch {
	case f.Organizations == nil:
	case len(f.Organizations) == 0:
		q.add("1 = 0") // a scope with no organisation sees nothing
	default:
		q.in("organization_id", f.Organizations)
	}
	if !f.Since.IsZero() {
		q.add("first_seen >= " + q.arg(q.d.Time(f.Since)))
	}
	if !f.Until.IsZero() {
		q.add("first_seen < " + q.arg(q.d.Time(f.Until)))
	}
}

func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

func stringsOf[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// Row receives one row of Columns. The store scans the instants and the tags
// into destinations of its own, since their encodings differ, sets them on
// Alert, and calls Finish.
type Row struct {
	Alert                 audit.Alert
	typ, severity, status string
	metadata              []byte
}

// Dest returns the scan destinations of Columns, in order: the store's own
// for the five instants and the tags, fields of r for the rest.
func (r *Row) Dest(firstSeen, lastSeen, acknowledgedAt, resolvedAt, updatedAt, tags any) []any {
	a := &r.Alert
	return []any{&a.ID, &a.OrganizationID, &r.typ, &r.severity, &a.Title, &a.Description, &a.Source, &r.status,
		&a.DedupKey, firstSeen, lastSeen, &a.Occurrences, &r.metadata, &a.CorrelationID, tags,
		&a.AcknowledgedBy, acknowledgedAt, &a.ResolvedBy, resolvedAt, &a.StatusNote, updatedAt}
}

// Finish returns the scanned alert as every store reports it: instants in
// UTC, Tags never nil, Metadata nil when the column is NULL or empty.
func (r *Row) Finish() audit.Alert {
	a := r.Alert
	a.Type, a.Severity, a.Status = audit.AlertType(r.typ), audit.Severity(r.severity), audit.AlertStatus(r.status)
	if len(r.metadata) > 0 {
		a.Metadata = r.metadata
	}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	a.FirstSeen, a.LastSeen, a.UpdatedAt = a.FirstSeen.UTC(), a.LastSeen.UTC(), a.UpdatedAt.UTC()
	a.AcknowledgedAt, a.ResolvedAt = utc(a.AcknowledgedAt), utc(a.ResolvedAt)
	return a
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
