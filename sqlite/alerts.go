package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

var (
	_ audit.AlertBatchStore  = (*Store)(nil)
	_ audit.DeliveryRecorder = (*Store)(nil)
)

const alertColumns = `id, organization_id, type, severity, title, description, source, status,
	dedup_key, first_seen, last_seen, occurrences, metadata, correlation_id, tags,
	acknowledged_by, acknowledged_at, resolved_by, resolved_at, status_note, updated_at`

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanAlert(row rowScanner) (audit.Alert, error) {
	var a audit.Alert
	var typ, sev, status, tags string
	var meta sql.NullString
	var first, last, updated, ackAt, resAt sql.NullInt64
	err := row.Scan(&a.ID, &a.OrganizationID, &typ, &sev, &a.Title, &a.Description, &a.Source, &status,
		&a.DedupKey, &first, &last, &a.Occurrences, &meta, &a.CorrelationID, &tags,
		&a.AcknowledgedBy, &ackAt, &a.ResolvedBy, &resAt, &a.StatusNote, &updated)
	if err != nil {
		return a, err
	}
	a.Type, a.Severity, a.Status = audit.AlertType(typ), audit.Severity(sev), audit.AlertStatus(status)
	a.FirstSeen, a.LastSeen, a.UpdatedAt = fromMicros(first), fromMicros(last), fromMicros(updated)
	a.AcknowledgedAt, a.ResolvedAt = timePtr(ackAt), timePtr(resAt)
	if meta.Valid && meta.String != "" {
		a.Metadata = json.RawMessage(meta.String)
	}
	if err := json.Unmarshal([]byte(tags), &a.Tags); err != nil {
		return a, fmt.Errorf("alert %s: tags: %w", a.ID, err)
	}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	return a, nil
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v)
	return &t
}

func microsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func nullable(m []byte) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

func tagsJSON(tags []string) string {
	if tags == nil {
		tags = []string{}
	}
	b, _ := json.Marshal(tags) // a []string always marshals
	return string(b)
}

// RaiseAlert records an observation of a condition (RaiseAlerts with one).
func (s *Store) RaiseAlert(ctx context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	return audit.RaiseOne(ctx, s, c)
}

// RaiseAlerts records observations of conditions, in order, in one write
// transaction: a commit each made a batch that raised an off-hours alert per
// principal six times slower than its events. The transaction is BEGIN
// IMMEDIATE on the single writer connection, so raisers in this process queue
// on the connection and raisers in other processes on SQLite's write lock:
// each read-decide-write sees the latest state, the earlier conditions' too.
func (s *Store) RaiseAlerts(ctx context.Context, cs []audit.AlertCondition) ([]audit.AlertRaise, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	conds, err := audit.NormalizeAll(cs, time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]audit.AlertRaise, len(conds))
	err = s.inWriteTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UTC().Truncate(time.Microsecond)
		for i, c := range conds {
			var err error
			if out[i], err = raiseInTx(ctx, tx, c, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		what := "raise alert " + conds[0].DedupKey
		if len(conds) > 1 {
			what = "raise " + strconv.Itoa(len(conds)) + " alerts"
		}
		return nil, alertErr(what, err)
	}
	return out, nil
}

// raiseInTx is the read-decide-write of one condition: a repeat within the
// window updates the one open alert; otherwise the open ones are resolved as
// superseded and a new alert opens.
func raiseInTx(ctx context.Context, tx *sql.Tx, c audit.AlertCondition, now time.Time) (audit.AlertRaise, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE dedup_key = ? AND status IN ('active', 'acknowledged')`, c.DedupKey)
	if err != nil {
		return audit.AlertRaise{}, err
	}
	open, err := collectAlerts(rows)
	if err != nil {
		return audit.AlertRaise{}, err
	}
	if len(open) == 1 && open[0].Covers(c) {
		a := open[0]
		a.Absorb(c, now)
		_, err := tx.ExecContext(ctx, `UPDATE alerts SET severity = ?, description = ?, last_seen = ?,
			occurrences = ?, metadata = ?, correlation_id = ?, tags = ?, updated_at = ? WHERE id = ?`,
			string(a.Severity), a.Description, a.LastSeen.UnixMicro(), a.Occurrences, nullable(a.Metadata),
			a.CorrelationID, tagsJSON(a.Tags), a.UpdatedAt.UnixMicro(), a.ID)
		return audit.AlertRaise{Alert: a}, err
	}
	for _, old := range open {
		if err := old.Transition(audit.AlertResolved, audit.SystemActor, audit.SupersededNote, now); err != nil {
			return audit.AlertRaise{}, err
		}
		if err := updateStatus(ctx, tx, old); err != nil {
			return audit.AlertRaise{}, err
		}
	}
	a := audit.NewAlertFrom(audit.NewAlertID(now), c, now)
	_, err = tx.ExecContext(ctx, `INSERT INTO alerts (id, organization_id, type, severity, title, description,
		source, status, dedup_key, first_seen, last_seen, occurrences, metadata, correlation_id, tags, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.OrganizationID, string(a.Type), string(a.Severity), a.Title, a.Description,
		a.Source, string(a.Status), a.DedupKey, a.FirstSeen.UnixMicro(), a.LastSeen.UnixMicro(), a.Occurrences,
		nullable(a.Metadata), a.CorrelationID, tagsJSON(a.Tags), a.UpdatedAt.UnixMicro())
	return audit.AlertRaise{Alert: a, Created: true}, err
}

func (s *Store) inWriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func updateStatus(ctx context.Context, tx *sql.Tx, a audit.Alert) error {
	_, err := tx.ExecContext(ctx, `UPDATE alerts SET status = ?, acknowledged_by = ?, acknowledged_at = ?,
		resolved_by = ?, resolved_at = ?, status_note = ?, updated_at = ? WHERE id = ?`,
		string(a.Status), a.AcknowledgedBy, microsPtr(a.AcknowledgedAt), a.ResolvedBy, microsPtr(a.ResolvedAt),
		a.StatusNote, a.UpdatedAt.UnixMicro(), a.ID)
	return err
}

func collectAlerts(rows *sql.Rows) ([]audit.Alert, error) {
	defer rows.Close()
	var out []audit.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// GetAlert returns the alert with this id, CodeNotFound when there is none.
func (s *Store) GetAlert(ctx context.Context, id string) (audit.Alert, error) {
	a, err := scanAlert(s.reader.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return audit.Alert{}, alertErr("get alert "+id, err)
	}
	return a, nil
}

// TransitionAlert moves an alert along its lifecycle inside a write
// transaction, so the status it checks is the status it changes.
func (s *Store) TransitionAlert(ctx context.Context, id string, to audit.AlertStatus, by, note string) (audit.Alert, error) {
	var out audit.Alert
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		a, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if err := a.Transition(to, by, note, time.Now()); err != nil {
			return err
		}
		out = a
		return updateStatus(ctx, tx, a)
	})
	if err != nil {
		return audit.Alert{}, alertErr("transition alert "+id, err)
	}
	return out, nil
}

// ListAlerts returns one page of alerts, newest first, and the cursor of the
// next page ("" on the last one).
func (s *Store) ListAlerts(ctx context.Context, f audit.AlertFilter) ([]audit.Alert, string, error) {
	f, err := f.Normalize()
	if err != nil {
		return nil, "", err
	}
	conds, args := alertWhere(f)
	if f.After != "" {
		at, id, _ := audit.DecodeAlertCursor(f.After) // checked by Normalize
		conds = append(conds, "(first_seen, id) < (?, ?)")
		args = append(args, at.UnixMicro(), id)
	}
	args = append(args, f.Limit+1)
	rows, err := s.reader.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts`+whereClause(conds)+
		` ORDER BY first_seen DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, "", alertErr("list alerts", err)
	}
	alerts, err := collectAlerts(rows)
	if err != nil {
		return nil, "", alertErr("list alerts", err)
	}
	next := ""
	if len(alerts) > f.Limit {
		alerts = alerts[:f.Limit]
		next = audit.AlertCursor(alerts[len(alerts)-1])
	}
	return alerts, next, nil
}

// AlertStatistics counts the alerts that match f (Limit and After ignored).
func (s *Store) AlertStatistics(ctx context.Context, f audit.AlertFilter) (audit.AlertStatistics, error) {
	f, err := f.Normalize()
	if err != nil {
		return audit.AlertStatistics{}, err
	}
	conds, args := alertWhere(f)
	rows, err := s.reader.QueryContext(ctx, `SELECT status, severity, type, count(*) FROM alerts`+
		whereClause(conds)+` GROUP BY status, severity, type`, args...)
	if err != nil {
		return audit.AlertStatistics{}, alertErr("alert statistics", err)
	}
	defer rows.Close()
	st := audit.NewAlertStatistics()
	for rows.Next() {
		var status, sev, typ string
		var n int64
		if err := rows.Scan(&status, &sev, &typ, &n); err != nil {
			return audit.AlertStatistics{}, alertErr("alert statistics", err)
		}
		st.Add(audit.AlertStatus(status), audit.Severity(sev), audit.AlertType(typ), n)
	}
	if err := rows.Err(); err != nil {
		return audit.AlertStatistics{}, alertErr("alert statistics", err)
	}
	return st, nil
}

// alertWhere turns a filter into conditions with ? placeholders and their
// arguments: values never enter the SQL text.
func alertWhere(f audit.AlertFilter) (conds []string, args []any) {
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		conds = append(conds, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")")
		for _, v := range vals {
			args = append(args, v)
		}
	}
	in("status", stringsOf(f.Status))
	in("severity", stringsOf(f.Severity))
	in("type", stringsOf(f.Type))
	if f.OrganizationID != "" {
		conds, args = append(conds, "organization_id = ?"), append(args, f.OrganizationID)
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "first_seen >= ?"), append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "first_seen < ?"), append(args, f.Until.UnixMicro())
	}
	return conds, args
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

func stringsOf[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// RecordDelivery keeps the outcome of one notification attempt.
func (s *Store) RecordDelivery(ctx context.Context, d audit.AlertDelivery) error {
	var httpStatus any
	if d.HTTPStatus != 0 {
		httpStatus = d.HTTPStatus
	}
	_, err := s.writer.ExecContext(ctx, `INSERT INTO alert_deliveries
		(alert_id, delivery_id, destination, attempt, status, http_status, error, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		d.AlertID, d.DeliveryID, d.Destination, d.Attempt, string(d.Status), httpStatus, d.Error, d.At.UnixMicro())
	if err != nil {
		return classify("record delivery for alert "+d.AlertID, err)
	}
	return nil
}

// ListAlertDeliveries returns the recorded attempts for an alert, oldest first.
func (s *Store) ListAlertDeliveries(ctx context.Context, alertID string) ([]audit.AlertDelivery, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT alert_id, delivery_id, destination, attempt, status,
		COALESCE(http_status, 0), error, at FROM alert_deliveries WHERE alert_id = ? ORDER BY id`, alertID)
	if err != nil {
		return nil, classify("list deliveries of alert "+alertID, err)
	}
	defer rows.Close()
	var out []audit.AlertDelivery
	for rows.Next() {
		var d audit.AlertDelivery
		var status string
		var at sql.NullInt64
		if err := rows.Scan(&d.AlertID, &d.DeliveryID, &d.Destination, &d.Attempt, &status, &d.HTTPStatus, &d.Error, &at); err != nil {
			return nil, classify("list deliveries of alert "+alertID, err)
		}
		d.Status, d.At = audit.DeliveryStatus(status), fromMicros(at)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("list deliveries of alert "+alertID, err)
	}
	return out, nil
}

// alertErr keeps domain errors (a refused transition) as they are and maps the
// rest: no row is CodeNotFound, anything else goes through classify.
func alertErr(op string, err error) error {
	if audit.ErrorCode(err) != "" {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Errorf(audit.CodeNotFound, "%s: no such alert", op)
	}
	return classify(op, err)
}
