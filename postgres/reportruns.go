package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

var _ report.RunStore = (*Store)(nil)

const runColumns = `id, schedule, report_type, organizations, period_start, period_end, format, destination,
	status, attempts, started_at, finished_at, next_attempt_at, report_id, location, size_bytes, sha256, error`

func scanRun(row pgx.CollectableRow) (report.Run, error) {
	var r report.Run
	var typ, format string
	err := row.Scan(&r.ID, &r.Schedule, &typ, &r.Organizations, &r.PeriodStart, &r.PeriodEnd, &format, &r.Destination,
		&r.Status, &r.Attempts, &r.StartedAt, &r.FinishedAt, &r.NextAttemptAt, &r.ReportID, &r.Location, &r.SizeBytes,
		&r.SHA256, &r.Error)
	r.Type, r.Format = report.Type(typ), report.Format(format)
	r.PeriodStart, r.PeriodEnd, r.StartedAt = r.PeriodStart.UTC(), r.PeriodEnd.UTC(), r.StartedAt.UTC()
	return r, err
}

// ClaimRun inserts the run, or takes over a run whose lease expired or that
// failed and is due, in one statement: of concurrent claims one wins, the
// others wait on the unique key and then find the run held.
func (s *Store) ClaimRun(ctx context.Context, c report.RunClaim, owner string, now time.Time, lease time.Duration, maxAttempts int) (report.Run, bool, error) {
	rows, err := s.pool.Query(ctx, `INSERT INTO audit_report_runs AS r (schedule, report_type, organizations, period_start,
			period_end, format, destination, status, attempts, owner, lease_until, started_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 1, $8, $9, $10)
		ON CONFLICT (schedule, period_start, period_end) DO UPDATE SET status = 'running', attempts = r.attempts + 1,
			owner = excluded.owner, lease_until = excluded.lease_until, started_at = excluded.started_at,
			finished_at = NULL, next_attempt_at = NULL, error = ''
		WHERE (r.status = 'running' AND r.lease_until < $10)
			OR (r.status = 'failed' AND r.next_attempt_at <= $10 AND r.attempts < $11)
		RETURNING `+runColumns,
		c.Schedule, string(c.Type), c.Organizations, c.PeriodStart, c.PeriodEnd, string(c.Format), c.Destination,
		owner, now.Add(lease), now, maxAttempts)
	if err != nil {
		return report.Run{}, false, wrapErr("claim report run", err)
	}
	run, err := pgx.CollectExactlyOneRow(rows, scanRun)
	if errors.Is(err, pgx.ErrNoRows) {
		return report.Run{}, false, nil
	}
	if err != nil {
		return report.Run{}, false, wrapErr("claim report run", err)
	}
	return run, true, nil
}

// FinishRun records how the run ended, if owner still holds it.
func (s *Store) FinishRun(ctx context.Context, id int64, owner string, res report.RunResult, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE audit_report_runs SET status = $3, finished_at = $4, report_id = $5,
			location = $6, size_bytes = $7, sha256 = $8, error = $9, next_attempt_at = $10
		WHERE id = $1 AND owner = $2 AND status = 'running'`,
		id, owner, res.Status, now, res.ReportID, res.Location, res.SizeBytes, res.SHA256, res.Error, res.NextAttemptAt)
	if err != nil {
		return wrapErr("finish report run", err)
	}
	if tag.RowsAffected() == 0 {
		return audit.Errorf(audit.CodeConflict, "report run %d is no longer held by this replica", id)
	}
	return nil
}

// LastPeriodEnd is the latest period end among the schedule's runs.
func (s *Store) LastPeriodEnd(ctx context.Context, schedule string) (time.Time, bool, error) {
	var end *time.Time
	err := s.pool.QueryRow(ctx, `SELECT max(period_end) FROM audit_report_runs WHERE schedule = $1`, schedule).Scan(&end)
	if err != nil {
		return time.Time{}, false, wrapErr("read report runs", err)
	}
	if end == nil {
		return time.Time{}, false, nil
	}
	return end.UTC(), true, nil
}

// DueRuns lists the runs to take up again.
func (s *Store) DueRuns(ctx context.Context, now time.Time, maxAttempts int) ([]report.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM audit_report_runs
		WHERE (status = 'failed' AND next_attempt_at <= $1 AND attempts < $2) OR (status = 'running' AND lease_until < $1)
		ORDER BY period_end, id`, now, maxAttempts)
	if err != nil {
		return nil, wrapErr("read report runs", err)
	}
	out, err := pgx.CollectRows(rows, scanRun)
	return out, wrapErr("read report runs", err)
}

// ListRuns lists runs, newest first.
func (s *Store) ListRuns(ctx context.Context, q report.RunQuery) ([]report.Run, error) {
	w := &where{}
	if q.Schedule != "" {
		w.add(`schedule = ?`, q.Schedule)
	}
	if q.After > 0 {
		w.add(`id < ?`, q.After)
	}
	w.args = append(w.args, q.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM audit_report_runs`+w.sql()+
		` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(w.args)), w.args...)
	if err != nil {
		return nil, wrapErr("list report runs", err)
	}
	out, err := pgx.CollectRows(rows, scanRun)
	return out, wrapErr("list report runs", err)
}
