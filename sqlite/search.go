package sqlite

import (
	"context"
	"strings"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.EventReader = (*Store)(nil)

// prefixUpper is the smallest string above every string that starts with
// prefix, in byte order (prefix ends in '.', and '/' follows '.'); with
// SQLite's BINARY collation the range reads the action index.
func prefixUpper(prefix string) string { return prefix[:len(prefix)-1] + "/" }

// searchSQL turns the query's filters into a statement and its parameters;
// only fixed SQL text is appended, values always go in as "?".
func searchSQL(q audit.EventQuery) (string, []any) {
	where, args := searchWhere(q)
	order := ` ORDER BY timestamp DESC, id DESC`
	if q.Order == audit.OrderAsc {
		order = ` ORDER BY timestamp, id`
	}
	return `SELECT ` + eventColumns + ` FROM audit_log` + where + order + ` LIMIT ?`, append(args, q.Limit)
}

// searchWhere is the WHERE clause of the query's filters and position, and
// its parameters ("" when nothing is filtered).
func searchWhere(q audit.EventQuery) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if q.Organizations != nil {
		add(`organization_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(q.Organizations)), ",")+`)`,
			anySlice(q.Organizations)...)
	}
	since, until := q.Bounds()
	if !since.IsZero() {
		add(`timestamp >= ?`, since.UnixMicro())
	}
	if !until.IsZero() {
		add(`timestamp < ?`, until.UnixMicro())
	}
	if prefix, ok := q.ActionPrefix(); ok {
		add(`action >= ? AND action < ?`, prefix, prefixUpper(prefix))
	} else if q.Action != "" {
		add(`action = ?`, q.Action)
	}
	for _, p := range q.ExcludeActionPrefixes {
		add(`NOT (action >= ? AND action < ?)`, p, prefixUpper(p))
	}
	for _, f := range []struct {
		column, value string
	}{
		{"principal_id", q.PrincipalID}, {"status", string(q.Status)},
		{"target_resource_type", q.TargetResourceType}, {"target_resource_id", q.TargetResourceID},
		{"data_classification", string(q.DataClassification)}, {"correlation_id", q.CorrelationID},
		{"json_extract(details, '$.sessionContext.sessionId')", q.SessionID},
		{"json_extract(details, '$.sessionContext.ipAddress')", q.IPAddress},
	} {
		if f.value != "" {
			add(f.column+` = ?`, f.value)
		}
	}
	if q.After != nil {
		if q.Order == audit.OrderAsc {
			add(`(timestamp, id) > (?, ?)`, q.After.Time.UnixMicro(), q.After.Seq)
		} else {
			add(`(timestamp, id) < (?, ?)`, q.After.Time.UnixMicro(), q.After.Seq)
		}
	}
	if len(conds) == 0 {
		return "", args
	}
	return ` WHERE ` + strings.Join(conds, " AND "), args
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// SearchEvents returns a page of events matching q (keyset paging on
// (timestamp, id): a deep page costs what the first one costs).
func (s *Store) SearchEvents(ctx context.Context, q audit.EventQuery) ([]audit.StoredEvent, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	query, args := searchSQL(q)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify("search events", err)
	}
	// A page of an export is thousands of rows: room for them up front
	// spares copying the events as the slice grows.
	events, err := scanEvents(rows, min(q.Limit, 4096))
	if err != nil {
		return nil, classify("search events", err)
	}
	return events, nil
}

// GetEventBySeq returns the event with this sequence number.
func (s *Store) GetEventBySeq(ctx context.Context, seq int64) (audit.StoredEvent, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_log WHERE id = ?`, seq)
	if err != nil {
		return audit.StoredEvent{}, classify("get event", err)
	}
	events, err := scanEvents(rows, 1)
	if err != nil {
		return audit.StoredEvent{}, classify("get event", err)
	}
	if len(events) == 0 {
		return audit.StoredEvent{}, audit.Errorf(audit.CodeNotFound, "event %d: no such event", seq)
	}
	return events[0], nil
}
