package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/alertsql"
)

var (
	_ audit.AlertBatchStore  = (*Store)(nil)
	_ audit.DeliveryRecorder = (*Store)(nil)
)

// alertSQL writes parameters as ?, lists one argument each, instants as
// Unix microseconds and tags as a JSON array.
var alertSQL = alertsql.Dialect{
	Param: func(int) string { return "?" },
	Time:  func(t time.Time) any { return t.UnixMicro() },
	Tags:  func(tags []string) any { return tagsJSON(tags) },
}

var (
	insertAlertSQL = alertSQL.Insert()
	updateAlertSQL = alertSQL.Update()
)

func scanAlert(row *sql.Rows) (audit.Alert, error) {
	var r alertsql.Row
	var first, last, ackAt, resAt, updated sql.NullInt64
	var tags string
	if err := row.Scan(r.Dest(&first, &last, &ackAt, &resAt, &updated, &tags)...); err != nil {
		return audit.Alert{}, err
	}
	a := &r.Alert
	a.FirstSeen, a.LastSeen, a.UpdatedAt = fromMicros(first), fromMicros(last), fromMicros(updated)
	a.AcknowledgedAt, a.ResolvedAt = timePtr(ackAt), timePtr(resAt)
	if err := json.Unmarshal([]byte(tags), &a.Tags); err != nil {
		return audit.Alert{}, fmt.Errorf("alert %s: tags: %w", a.ID, err)
	}
	return r.Finish(), nil
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v)
	return &t
}

func tagsJSON(tags []string) string {
	if tags == nil {
		tags = []string{}
	}
	b, _ := json.Marshal(tags) // a []string always marshals
	return string(b)
}

// alerts runs the alert operations on the store's connections (see alertsql.Alerts).
func (s *Store) alerts() alertsql.Alerts {
	return alertsql.Alerts{DB: alertDB{s}, Dialect: alertSQL}
}

// RaiseAlert records an observation of a condition (RaiseAlerts with one).
func (s *Store) RaiseAlert(ctx context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	return s.alerts().RaiseAlert(ctx, c)
}

// RaiseAlerts records observations of conditions, in order, in one write
// transaction: a commit each made a batch that raised an off-hours alert per
// principal six times slower than its events. The transaction is BEGIN
// IMMEDIATE on the single writer connection, so raisers in this process queue
// on the connection and raisers in other processes on SQLite's write lock:
// each read-decide-write sees the latest state, the earlier conditions' too.
func (s *Store) RaiseAlerts(ctx context.Context, cs []audit.AlertCondition) ([]audit.AlertRaise, error) {
	return s.alerts().RaiseAlerts(ctx, cs)
}

// GetAlert returns the alert with this id, CodeNotFound when there is none.
func (s *Store) GetAlert(ctx context.Context, id string) (audit.Alert, error) {
	return s.alerts().GetAlert(ctx, id)
}

// TransitionAlert moves an alert along its lifecycle inside a write
// transaction, so the status it checks is the status it changes.
func (s *Store) TransitionAlert(ctx context.Context, id string, to audit.AlertStatus, by, note string) (audit.Alert, error) {
	return s.alerts().TransitionAlert(ctx, id, to, by, note)
}

// ListAlerts returns one page of alerts, newest first, and the cursor of the
// next page ("" on the last one).
func (s *Store) ListAlerts(ctx context.Context, f audit.AlertFilter) ([]audit.Alert, string, error) {
	return s.alerts().ListAlerts(ctx, f)
}

// AlertStatistics counts the alerts that match f (Limit and After ignored).
func (s *Store) AlertStatistics(ctx context.Context, f audit.AlertFilter) (audit.AlertStatistics, error) {
	return s.alerts().AlertStatistics(ctx, f)
}

// alertDB runs alertsql's statements: transactions on the writer, queries on
// the readers.
type alertDB struct{ s *Store }

func (d alertDB) InTx(ctx context.Context, fn func(alertsql.Tx) error) error {
	return d.s.inWriteTx(ctx, func(tx *sql.Tx) error { return fn(alertTx{tx}) })
}

func (d alertDB) Query(ctx context.Context, query string, args []any) ([]audit.Alert, error) {
	return queryAlerts(ctx, d.s.reader, query, args)
}

func (d alertDB) Count(ctx context.Context, query string, args []any, add func(status, severity, typ string, n int64)) error {
	rows, err := d.s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var status, severity, typ string
		var n int64
		if err := rows.Scan(&status, &severity, &typ, &n); err != nil {
			return err
		}
		add(status, severity, typ, n)
	}
	return rows.Err()
}

func (alertDB) Wrap(op string, err error) error { return classify(op, err) }

// alertTx runs alertsql's statements in a write transaction.
type alertTx struct{ tx *sql.Tx }

// Lock has nothing to do: the transaction began IMMEDIATE, so it holds
// SQLite's one write lock, for every key at once.
func (alertTx) Lock(context.Context, []string) error { return nil }

func (t alertTx) Query(ctx context.Context, query string, args []any) ([]audit.Alert, error) {
	return queryAlerts(ctx, t.tx, query, args)
}

func (t alertTx) Write(ctx context.Context, updated, created []*audit.Alert) error {
	for _, a := range updated {
		if _, err := t.tx.ExecContext(ctx, updateAlertSQL, alertSQL.UpdateArgs(a)...); err != nil {
			return err
		}
	}
	for _, a := range created {
		if _, err := t.tx.ExecContext(ctx, insertAlertSQL, alertSQL.Values(a)...); err != nil {
			return err
		}
	}
	return nil
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAlerts runs a query and scans its alerts.
func queryAlerts(ctx context.Context, db querier, query string, args []any) ([]audit.Alert, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
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
