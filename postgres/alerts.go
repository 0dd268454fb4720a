package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/alertsql"
)

var (
	_ audit.AlertBatchStore  = (*Store)(nil)
	_ audit.DeliveryRecorder = (*Store)(nil)
)

// alertLockClass is the first key of the two-key advisory locks that serialise
// raises of one dedup key (the second is hashtext(key)). The two-key lock space
// is separate from the one-bigint space of the migration lock. "al" in ASCII.
const alertLockClass int32 = 0x616c

// alertSQL writes parameters as $n and lists as arrays; instants and tags
// travel as themselves (timestamptz, text[]).
var alertSQL = alertsql.Dialect{
	Param:  func(n int) string { return "$" + strconv.Itoa(n) },
	Arrays: true,
	Time:   func(t time.Time) any { return t },
	Tags:   func(tags []string) any { return tags },
}

var updateAlertSQL = alertSQL.Update()

func scanAlert(row pgx.CollectableRow) (audit.Alert, error) {
	var r alertsql.Row
	a := &r.Alert
	err := row.Scan(r.Dest(&a.FirstSeen, &a.LastSeen, &a.AcknowledgedAt, &a.ResolvedAt, &a.UpdatedAt, &a.Tags)...)
	return r.Finish(), err
}

// alerts runs the alert operations on the pool (see alertsql.Alerts).
func (s *Store) alerts() alertsql.Alerts {
	return alertsql.Alerts{DB: alertDB{s.pool}, Dialect: alertSQL}
}

// RaiseAlert records an observation of a condition (RaiseAlerts with one).
func (s *Store) RaiseAlert(ctx context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	return s.alerts().RaiseAlert(ctx, c)
}

// RaiseAlerts records observations of conditions, in order, in one
// transaction of five round trips however many there are: a batch of events
// at night raises an off-hours alert for each principal, and a transaction per
// alert cost more than storing the events. Transaction-scoped advisory locks
// on the dedup keys serialise raisers of the same condition across every
// process, so the read-decide-write sees the latest state; the partial unique
// index alerts_open_dedup_key backs them up. A condition sees what the earlier
// ones of its key did.
func (s *Store) RaiseAlerts(ctx context.Context, cs []audit.AlertCondition) ([]audit.AlertRaise, error) {
	return s.alerts().RaiseAlerts(ctx, cs)
}

// GetAlert returns the alert with this id, CodeNotFound when there is none.
func (s *Store) GetAlert(ctx context.Context, id string) (audit.Alert, error) {
	return s.alerts().GetAlert(ctx, id)
}

// TransitionAlert moves an alert along its lifecycle under a row lock, so two
// operators acting at once cannot both succeed with conflicting moves.
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

// alertDB runs alertsql's statements on the pool.
type alertDB struct{ pool *pgxpool.Pool }

func (d alertDB) InTx(ctx context.Context, fn func(alertsql.Tx) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return fn(alertTx{tx}) })
}

func (d alertDB) Query(ctx context.Context, query string, args []any) ([]audit.Alert, error) {
	rows, _ := d.pool.Query(ctx, query, args...)
	return pgx.CollectRows(rows, scanAlert)
}

func (d alertDB) Count(ctx context.Context, query string, args []any, add func(status, severity, typ string, n int64)) error {
	rows, _ := d.pool.Query(ctx, query, args...)
	var status, severity, typ string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&status, &severity, &typ, &n}, func() error {
		add(status, severity, typ, n)
		return nil
	})
	return err
}

func (alertDB) Wrap(op string, err error) error { return wrapErr(op, err) }

// alertTx runs alertsql's statements in a transaction.
type alertTx struct{ tx pgx.Tx }

// Lock takes the keys' advisory locks in the order given (unnest keeps the
// array's order): alertsql passes them sorted, so two raisers sharing keys
// cannot each hold one the other waits for.
func (t alertTx) Lock(ctx context.Context, keys []string) error {
	_, err := t.tx.Exec(ctx, "SELECT count(pg_advisory_xact_lock($1, hashtext(k))) FROM unnest($2::text[]) AS k",
		alertLockClass, keys)
	return err
}

// Query reads rows FOR UPDATE: a transition holds its alert's row.
func (t alertTx) Query(ctx context.Context, query string, args []any) ([]audit.Alert, error) {
	rows, _ := t.tx.Query(ctx, query+" FOR UPDATE", args...)
	return pgx.CollectRows(rows, scanAlert)
}

// Write sends the rows in one round trip: first the alerts that were in the
// table, then the new ones in their final state, all in one INSERT.
func (t alertTx) Write(ctx context.Context, updated, created []*audit.Alert) error {
	var batch pgx.Batch
	for _, a := range updated {
		batch.Queue(updateAlertSQL, alertSQL.UpdateArgs(a)...)
	}
	if len(created) > 0 {
		batch.Queue(insertAlertsSQL, insertAlertsArgs(created)...)
	}
	if batch.Len() == 0 {
		return nil
	}
	return t.tx.SendBatch(ctx, &batch).Close()
}

// insertAlertsSQL inserts one row per element of its 21 column arrays. Tags
// travel as JSON arrays, since rows hold different numbers of them.
const insertAlertsSQL = `INSERT INTO alerts (id, organization_id, type, severity, title, description,
	source, status, dedup_key, first_seen, last_seen, occurrences, metadata, correlation_id, tags,
	acknowledged_by, acknowledged_at, resolved_by, resolved_at, status_note, updated_at)
SELECT id, org, typ, sev, title, descr, src, status, dk, fs, ls, occ, meta::jsonb, corr,
	ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)), ackby, ackat, resby, resat, note, upd
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::bigint[], $13::text[],
	$14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::text[], $19::timestamptz[],
	$20::text[], $21::timestamptz[])
	AS r(id, org, typ, sev, title, descr, src, status, dk, fs, ls, occ, meta, corr, tags,
	ackby, ackat, resby, resat, note, upd)`

// insertAlertsArgs returns insertAlertsSQL's arguments for alerts.
func insertAlertsArgs(alerts []*audit.Alert) []any {
	var (
		ids, orgs, types, sevs, titles, descs, sources, statuses, keys []string
		metas                                                          []*string
		corrs, tags, ackBys, resBys, notes                             []string
		firsts, lasts, updated                                         []time.Time
		ackAts, resAts                                                 []*time.Time
		occs                                                           []int64
	)
	for _, a := range alerts {
		tagJSON, _ := json.Marshal(a.Tags) // a []string always marshals
		var meta *string
		if len(a.Metadata) > 0 {
			m := string(a.Metadata)
			meta = &m
		}
		ids, orgs, types, sevs = append(ids, a.ID), append(orgs, a.OrganizationID), append(types, string(a.Type)), append(sevs, string(a.Severity))
		titles, descs, sources = append(titles, a.Title), append(descs, a.Description), append(sources, a.Source)
		statuses, keys = append(statuses, string(a.Status)), append(keys, a.DedupKey)
		firsts, lasts, occs = append(firsts, a.FirstSeen), append(lasts, a.LastSeen), append(occs, a.Occurrences)
		metas, corrs, tags = append(metas, meta), append(corrs, a.CorrelationID), append(tags, string(tagJSON))
		ackBys, ackAts = append(ackBys, a.AcknowledgedBy), append(ackAts, a.AcknowledgedAt)
		resBys, resAts = append(resBys, a.ResolvedBy), append(resAts, a.ResolvedAt)
		notes, updated = append(notes, a.StatusNote), append(updated, a.UpdatedAt)
	}
	return []any{ids, orgs, types, sevs, titles, descs, sources, statuses, keys, firsts, lasts, occs,
		metas, corrs, tags, ackBys, ackAts, resBys, resAts, notes, updated}
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
