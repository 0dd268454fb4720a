package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.EventReader = (*Store)(nil)

// where collects the conditions of a statement and their parameters; only
// fixed SQL text is ever appended, values always go in as $n.
type where struct {
	conds []string
	args  []any
}

// add appends a condition whose "?" placeholders take args in order.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// prefixUpper is the smallest string above every string that starts with
// prefix, in byte order (prefix ends in '.', and '/' follows '.').
func prefixUpper(prefix string) string { return prefix[:len(prefix)-1] + "/" }

// searchWhere turns the query's filters into conditions. Each filter leads to
// an index where one exists (docs/querying.md lists them): organisation +
// time, principal + time, correlation id, target resource, action prefix.
func searchWhere(q audit.EventQuery) *where {
	w := &where{}
	switch {
	case len(q.Organizations) == 1:
		// "= $1", not "= ANY($1)": PostgreSQL 15 reads an index in order only
		// for an equality, and "= ANY" makes it sort every match of the
		// organisation before the limit applies.
		w.add(`organization_id = ?`, q.Organizations[0])
	case q.Organizations != nil:
		w.add(`organization_id = ANY(?)`, q.Organizations)
	}
	since, until := q.Bounds()
	if !since.IsZero() {
		w.add(`"timestamp" >= ?`, since)
	}
	if !until.IsZero() {
		w.add(`"timestamp" < ?`, until)
	}
	if prefix, ok := q.ActionPrefix(); ok {
		w.add(`action COLLATE "C" >= ? AND action COLLATE "C" < ?`, prefix, prefixUpper(prefix))
	} else if q.Action != "" {
		w.add(`action = ?`, q.Action)
	}
	if q.Action != "" {
		// Implied by the action filter; it lets the planner walk the action
		// family's index in search order (007_search_indexes).
		family, _, _ := strings.Cut(q.Action, ".")
		w.add(`split_part(action, '.', 1) = ?`, family)
	}
	for _, p := range q.ExcludeActionPrefixes {
		w.add(`NOT (action COLLATE "C" >= ? AND action COLLATE "C" < ?)`, p, prefixUpper(p))
	}
	for _, f := range []struct {
		column, value string
	}{
		{"principal_id", q.PrincipalID}, {"status", string(q.Status)},
		{"target_resource_type", q.TargetResourceType}, {"target_resource_id", q.TargetResourceID},
		{"data_classification", string(q.DataClassification)}, {"correlation_id", q.CorrelationID},
		{"(details->'sessionContext'->>'sessionId')", q.SessionID},
		{"(details->'sessionContext'->>'ipAddress')", q.IPAddress},
	} {
		if f.value != "" {
			w.add(f.column+` = ?`, f.value)
		}
	}
	if q.After != nil {
		if q.Order == audit.OrderAsc {
			w.add(`("timestamp", id) > (?, ?)`, q.After.Time, q.After.Seq)
		} else {
			w.add(`("timestamp", id) < (?, ?)`, q.After.Time, q.After.Seq)
		}
	}
	return w
}

// searchSQL is the statement of a search and its parameters.
func searchSQL(q audit.EventQuery) (string, []any) {
	w := searchWhere(q)
	order := ` ORDER BY "timestamp" DESC, id DESC`
	if q.Order == audit.OrderAsc {
		order = ` ORDER BY "timestamp", id`
	}
	w.args = append(w.args, q.Limit)
	return `SELECT ` + eventColumns + ` FROM audit_log` + w.sql() + order + ` LIMIT $` + strconv.Itoa(len(w.args)), w.args
}

// SearchEvents returns a page of events matching q (keyset paging on
// ("timestamp", id): a deep page costs what the first one costs).
func (s *Store) SearchEvents(ctx context.Context, q audit.EventQuery) ([]audit.StoredEvent, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	sql, args := searchSQL(q)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrapErr("search events", err)
	}
	// A page of an export is thousands of rows: room for them up front
	// spares copying the events as the slice grows.
	out, err := pgx.AppendRows(make([]audit.StoredEvent, 0, min(q.Limit, 4096)), rows, scanEvent)
	if err != nil {
		return nil, wrapErr("search events", err)
	}
	return out, nil
}

// GetEventBySeq returns the event with this sequence number.
func (s *Store) GetEventBySeq(ctx context.Context, seq int64) (audit.StoredEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM audit_log WHERE id = $1`, seq)
	if err != nil {
		return audit.StoredEvent{}, wrapErr("get event", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.StoredEvent{}, audit.Errorf(audit.CodeNotFound, "event %d: no such event", seq)
	}
	if err != nil {
		return audit.StoredEvent{}, wrapErr("get event", err)
	}
	return e, nil
}
