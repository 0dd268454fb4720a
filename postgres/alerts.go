package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

var (
	_ audit.AlertBatchStore  = (*Store)(nil)
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

// RaiseAlert records an observation of a condition (RaiseAlerts with one).
func (s *Store) RaiseAlert(ctx context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	return audit.RaiseOne(ctx, s, c)
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
	if len(cs) == 0 {
		return nil, nil
	}
	conds, err := audit.NormalizeAll(cs, time.Now())
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(conds))
	for i, c := range conds {
		keys[i] = c.DedupKey
	}
	// Every raiser takes its locks in key order, so two raisers sharing keys
	// cannot each hold one the other waits for. unnest keeps the array order.
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var out []audit.AlertRaise
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT count(pg_advisory_xact_lock($1, hashtext(k))) FROM unnest($2::text[]) AS k",
			alertLockClass, keys); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts
			WHERE dedup_key = ANY($1) AND status IN ('active', 'acknowledged') FOR UPDATE`, keys)
		open, err := pgx.CollectRows(rows, scanAlert)
		if err != nil {
			return err
		}
		b := newAlertBatch(open)
		now := time.Now().UTC().Truncate(time.Microsecond)
		out = make([]audit.AlertRaise, len(conds))
		for i, c := range conds {
			if out[i], err = b.raise(c, now); err != nil {
				return err
			}
		}
		return b.write(ctx, tx)
	})
	if err != nil {
		what := "raise alert " + keys[0]
		if len(keys) > 1 {
			what = "raise " + strconv.Itoa(len(conds)) + " alerts"
		}
		return nil, alertErr(what, err)
	}
	return out, nil
}

// alertBatch applies conditions to the open alerts of their keys in memory and
// remembers the rows to write.
type alertBatch struct {
	open    map[string][]*audit.Alert // per dedup key, its open alerts
	touched []*audit.Alert            // in order of first change
	isNew   map[*audit.Alert]bool     // every touched alert: true when not in the table yet
}

func newAlertBatch(open []audit.Alert) *alertBatch {
	b := &alertBatch{open: make(map[string][]*audit.Alert), isNew: make(map[*audit.Alert]bool)}
	for i := range open {
		a := &open[i]
		b.open[a.DedupKey] = append(b.open[a.DedupKey], a)
	}
	return b
}

// raise is RaiseAlert's decision: a repeat within the window updates the one
// open alert; otherwise the open ones are resolved as superseded and a new
// alert opens.
func (b *alertBatch) raise(c audit.AlertCondition, now time.Time) (audit.AlertRaise, error) {
	open := b.open[c.DedupKey]
	if len(open) == 1 && open[0].Covers(c) {
		a := open[0]
		a.Absorb(c, now)
		b.touch(a, false)
		return audit.AlertRaise{Alert: snapshot(a)}, nil
	}
	for _, old := range open {
		if err := old.Transition(audit.AlertResolved, audit.SystemActor, audit.SupersededNote, now); err != nil {
			return audit.AlertRaise{}, err
		}
		b.touch(old, false)
	}
	a := audit.NewAlertFrom(audit.NewAlertID(now), c, now)
	b.open[c.DedupKey] = []*audit.Alert{&a}
	b.touch(&a, true)
	return audit.AlertRaise{Alert: snapshot(&a), Created: true}, nil
}

func (b *alertBatch) touch(a *audit.Alert, isNew bool) {
	if _, seen := b.isNew[a]; seen {
		return
	}
	b.isNew[a] = isNew
	b.touched = append(b.touched, a)
}

// snapshot copies a as a raise reports it: later conditions of the same key
// may still change a (Absorb appends to its tags).
func snapshot(a *audit.Alert) audit.Alert {
	c := *a
	c.Tags = slices.Clone(a.Tags)
	return c
}

// write sends the batch's rows in one round trip: first the alerts that were
// in the table (closing superseded ones before their successors open, as the
// partial unique index requires), then the new ones in their final state, all
// in one INSERT.
func (b *alertBatch) write(ctx context.Context, tx pgx.Tx) error {
	var batch pgx.Batch
	for _, a := range b.touched {
		if !b.isNew[a] {
			batch.Queue(updateAlertSQL, updateAlertArgs(a)...)
		}
	}
	if ins := b.newRows(); ins != nil {
		batch.Queue(insertAlertsSQL, ins...)
	}
	if batch.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &batch).Close()
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

// newRows returns insertAlertsSQL's arguments for the batch's new alerts, nil
// when there are none.
func (b *alertBatch) newRows() []any {
	var (
		ids, orgs, types, sevs, titles, descs, sources, statuses, keys []string
		metas                                                          []*string
		corrs, tags, ackBys, resBys, notes                             []string
		firsts, lasts, updated                                         []time.Time
		ackAts, resAts                                                 []*time.Time
		occs                                                           []int64
	)
	for _, a := range b.touched {
		if !b.isNew[a] {
			continue
		}
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
	if len(ids) == 0 {
		return nil
	}
	return []any{ids, orgs, types, sevs, titles, descs, sources, statuses, keys, firsts, lasts, occs,
		metas, corrs, tags, ackBys, ackAts, resBys, resAts, notes, updated}
}

// updateAlertSQL writes every column of an alert a raise or a transition can
// change.
const updateAlertSQL = `UPDATE alerts SET severity = $2, description = $3, last_seen = $4, occurrences = $5,
	metadata = $6, correlation_id = $7, tags = $8, status = $9, acknowledged_by = $10,
	acknowledged_at = $11, resolved_by = $12, resolved_at = $13, status_note = $14, updated_at = $15
	WHERE id = $1`

func updateAlertArgs(a *audit.Alert) []any {
	return []any{a.ID, string(a.Severity), a.Description, a.LastSeen, a.Occurrences, metadataArg(a.Metadata),
		a.CorrelationID, a.Tags, string(a.Status), a.AcknowledgedBy, a.AcknowledgedAt,
		a.ResolvedBy, a.ResolvedAt, a.StatusNote, a.UpdatedAt}
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
		_, err = tx.Exec(ctx, updateAlertSQL, updateAlertArgs(&a)...)
		return err
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
