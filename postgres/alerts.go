package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

var (
	_ audit.AlertStore       = (*Store)(nil)
	_ audit.DeliveryRecorder = (*Store)(nil)
)

// alertLockClass is the first key of the two-key advisory locks that serialise
// raises of one dedup key (the second is hashtext(key)). The two-key lock space
// is separate from the one-bigint space of the migration lock. "al" in ASCII.
const alertLockClass int32 = 0x616c

const alertColumns = `id, organization_id, type, severity, title, description, source, status,
	dedup_key, first_seen, last_seen, occurrences, metadata, correlation_id, tags,
	acknowledged_by, acknowledged_at, resolved_by, resolved_at, status_note, updated_at`

func scanAlert(row pgx.CollectableRow) (audit.Alert, error) {
	var a audit.Alert
	var typ, sev, status string
	var meta []byte
	err := row.Scan(&a.ID, &a.OrganizationID, &typ, &sev, &a.Title, &a.Description, &a.Source, &status,
		&a.DedupKey, &a.FirstSeen, &a.LastSeen, &a.Occurrences, &meta, &a.CorrelationID, &a.Tags,
		&a.AcknowledgedBy, &a.AcknowledgedAt, &a.ResolvedBy, &a.ResolvedAt, &a.StatusNote, &a.UpdatedAt)
	if err != nil {
		return a, err
	}
	a.Type, a.Severity, a.Status = audit.AlertType(typ), audit.Severity(sev), audit.AlertStatus(status)
	if len(meta) > 0 {
		a.Metadata = meta
	}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	a.FirstSeen, a.LastSeen, a.UpdatedAt = a.FirstSeen.UTC(), a.LastSeen.UTC(), a.UpdatedAt.UTC()
	a.AcknowledgedAt, a.ResolvedAt = utcPtr(a.AcknowledgedAt), utcPtr(a.ResolvedAt)
	return a, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// metadataArg passes nil metadata as SQL NULL rather than an empty jsonb.
func metadataArg(m []byte) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

// RaiseAlert records an observation of a condition. A transaction-scoped
// advisory lock on the dedup key serialises raisers of the same condition
// across every process, so the read-decide-write below sees the latest state;
// the partial unique index alerts_open_dedup_key backs it up.
func (s *Store) RaiseAlert(ctx context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	c, err := c.Normalize(time.Now())
	if err != nil {
		return audit.AlertRaise{}, err
	}
	var out audit.AlertRaise
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", alertLockClass, c.DedupKey); err != nil {
			return err
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		rows, _ := tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts
			WHERE dedup_key = $1 AND status IN ('active', 'acknowledged') FOR UPDATE`, c.DedupKey)
		open, err := pgx.CollectRows(rows, scanAlert)
		if err != nil {
			return err
		}
		if len(open) == 1 && open[0].Covers(c) {
			a := open[0]
			a.Absorb(c, now)
			_, err := tx.Exec(ctx, `UPDATE alerts SET severity = $2, description = $3, last_seen = $4,
				occurrences = $5, metadata = $6, correlation_id = $7, tags = $8, updated_at = $9 WHERE id = $1`,
				a.ID, string(a.Severity), a.Description, a.LastSeen, a.Occurrences, metadataArg(a.Metadata),
				a.CorrelationID, a.Tags, a.UpdatedAt)
			out = audit.AlertRaise{Alert: a}
			return err
		}
		for _, old := range open {
			if err := old.Transition(audit.AlertResolved, audit.SystemActor, audit.SupersededNote, now); err != nil {
				return err
			}
			if err := updateStatus(ctx, tx, old); err != nil {
				return err
			}
		}
		a := audit.NewAlertFrom(audit.NewAlertID(now), c, now)
		_, err = tx.Exec(ctx, `INSERT INTO alerts (id, organization_id, type, severity, title, description,
			source, status, dedup_key, first_seen, last_seen, occurrences, metadata, correlation_id, tags, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			a.ID, a.OrganizationID, string(a.Type), string(a.Severity), a.Title, a.Description,
			a.Source, string(a.Status), a.DedupKey, a.FirstSeen, a.LastSeen, a.Occurrences,
			metadataArg(a.Metadata), a.CorrelationID, a.Tags, a.UpdatedAt)
		out = audit.AlertRaise{Alert: a, Created: true}
		return err
	})
	if err != nil {
		return audit.AlertRaise{}, alertErr("raise alert "+c.DedupKey, err)
	}
	return out, nil
}

func updateStatus(ctx context.Context, tx pgx.Tx, a audit.Alert) error {
	_, err := tx.Exec(ctx, `UPDATE alerts SET status = $2, acknowledged_by = $3, acknowledged_at = $4,
		resolved_by = $5, resolved_at = $6, status_note = $7, updated_at = $8 WHERE id = $1`,
		a.ID, string(a.Status), a.AcknowledgedBy, a.AcknowledgedAt, a.ResolvedBy, a.ResolvedAt, a.StatusNote, a.UpdatedAt)
	return err
}

// GetAlert returns the alert with this id, CodeNotFound when there is none.
func (s *Store) GetAlert(ctx context.Context, id string) (audit.Alert, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = $1`, id)
	a, err := pgx.CollectExactlyOneRow(rows, scanAlert)
	if err != nil {
		return audit.Alert{}, alertErr("get alert "+id, err)
	}
	return a, nil
}

// TransitionAlert moves an alert along its lifecycle under a row lock, so two
// operators acting at once cannot both succeed with conflicting moves.
func (s *Store) TransitionAlert(ctx context.Context, id string, to audit.AlertStatus, by, note string) (audit.Alert, error) {
	var out audit.Alert
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = $1 FOR UPDATE`, id)
		a, err := pgx.CollectExactlyOneRow(rows, scanAlert)
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
	var q alertQuery
	q.where(f)
	if f.After != "" {
		at, id, _ := audit.DecodeAlertCursor(f.After) // checked by Normalize
		q.add("(first_seen, id) < (" + q.arg(at) + ", " + q.arg(id) + ")")
	}
	sql := `SELECT ` + alertColumns + ` FROM alerts` + q.clause() +
		` ORDER BY first_seen DESC, id DESC LIMIT ` + q.arg(f.Limit+1)
	rows, _ := s.pool.Query(ctx, sql, q.args...)
	alerts, err := pgx.CollectRows(rows, scanAlert)
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
	var q alertQuery
	q.where(f)
	rows, _ := s.pool.Query(ctx, `SELECT status, severity, type, count(*) FROM alerts`+q.clause()+
		` GROUP BY status, severity, type`, q.args...)
	st := audit.NewAlertStatistics()
	var status, sev, typ string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&status, &sev, &typ, &n}, func() error {
		st.Add(audit.AlertStatus(status), audit.Severity(sev), audit.AlertType(typ), n)
		return nil
	})
	if err != nil {
		return audit.AlertStatistics{}, alertErr("alert statistics", err)
	}
	return st, nil
}

// RecordDelivery keeps the outcome of one notification attempt.
func (s *Store) RecordDelivery(ctx context.Context, d audit.AlertDelivery) error {
	var httpStatus *int
	if d.HTTPStatus != 0 {
		httpStatus = &d.HTTPStatus
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO alert_deliveries
		(alert_id, delivery_id, destination, attempt, status, http_status, error, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		d.AlertID, d.DeliveryID, d.Destination, d.Attempt, string(d.Status), httpStatus, d.Error, d.At)
	if err != nil {
		return wrapErr("record delivery for alert "+d.AlertID, err)
	}
	return nil
}

// ListAlertDeliveries returns the recorded attempts for an alert, oldest first.
func (s *Store) ListAlertDeliveries(ctx context.Context, alertID string) ([]audit.AlertDelivery, error) {
	rows, _ := s.pool.Query(ctx, `SELECT alert_id, delivery_id, destination, attempt, status,
		COALESCE(http_status, 0), error, at FROM alert_deliveries WHERE alert_id = $1 ORDER BY id`, alertID)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.AlertDelivery, error) {
		var d audit.AlertDelivery
		var status string
		err := row.Scan(&d.AlertID, &d.DeliveryID, &d.Destination, &d.Attempt, &status, &d.HTTPStatus, &d.Error, &d.At)
		d.Status, d.At = audit.DeliveryStatus(status), d.At.UTC()
		return d, err
	})
	if err != nil {
		return nil, wrapErr("list deliveries of alert "+alertID, err)
	}
	return out, nil
}

// alertQuery builds a WHERE clause from a filter with numbered parameters:
// values only ever travel as arguments, never inside the SQL text.
type alertQuery struct {
	conds []string
	args  []any
}

func (q *alertQuery) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *alertQuery) add(cond string) { q.conds = append(q.conds, cond) }

func (q *alertQuery) where(f audit.AlertFilter) {
	if len(f.Status) > 0 {
		q.add("status = ANY(" + q.arg(stringsOf(f.Status)) + ")")
	}
	if len(f.Severity) > 0 {
		q.add("severity = ANY(" + q.arg(stringsOf(f.Severity)) + ")")
	}
	if len(f.Type) > 0 {
		q.add("type = ANY(" + q.arg(stringsOf(f.Type)) + ")")
	}
	if f.OrganizationID != "" {
		q.add("organization_id = " + q.arg(f.OrganizationID))
	}
	if !f.Since.IsZero() {
		q.add("first_seen >= " + q.arg(f.Since))
	}
	if !f.Until.IsZero() {
		q.add("first_seen < " + q.arg(f.Until))
	}
}

func (q *alertQuery) clause() string {
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

// alertErr keeps domain errors (a refused transition) as they are and maps the
// rest: no row is CodeNotFound, anything else goes through wrapErr.
func alertErr(op string, err error) error {
	if audit.ErrorCode(err) != "" {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.Errorf(audit.CodeNotFound, "%s: no such alert", op)
	}
	return wrapErr(op, err)
}
