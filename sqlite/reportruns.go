package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

var _ report.RunStore = (*Store)(nil)

const runColumns = `id, schedule, report_type, organizations, period_start, period_end, format, destination,
	status, attempts, started_at, finished_at, next_attempt_at, report_id, location, size_bytes, sha256, error`

func scanRuns(rows *sql.Rows) ([]report.Run, error) {
	defer rows.Close()
	var out []report.Run
	for rows.Next() {
		var r report.Run
		var typ, format, orgs string
		var start, end, started int64
		var finished, next, size sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Schedule, &typ, &orgs, &start, &end, &format, &r.Destination, &r.Status,
			&r.Attempts, &started, &finished, &next, &r.ReportID, &r.Location, &size, &r.SHA256, &r.Error); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(orgs), &r.Organizations); err != nil {
			return nil, err
		}
		r.Type, r.Format = report.Type(typ), report.Format(format)
		r.PeriodStart, r.PeriodEnd, r.StartedAt = time.UnixMicro(start).UTC(), time.UnixMicro(end).UTC(), time.UnixMicro(started).UTC()
		if finished.Valid {
			t := time.UnixMicro(finished.Int64).UTC()
			r.FinishedAt = &t
		}
		if next.Valid {
			t := time.UnixMicro(next.Int64).UTC()
			r.NextAttemptAt = &t
		}
		if size.Valid {
			r.SizeBytes = &size.Int64
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ClaimRun inserts the run, or takes over a run whose lease expired or that
// failed and is due, in one statement on the single writer.
func (s *Store) ClaimRun(ctx context.Context, c report.RunClaim, owner string, now time.Time, lease time.Duration, maxAttempts int) (report.Run, bool, error) {
	orgs, _ := json.Marshal(c.Organizations)
	rows, err := s.writer.QueryContext(ctx, `INSERT INTO audit_report_runs AS r (schedule, report_type, organizations,
			period_start, period_end, format, destination, status, attempts, owner, lease_until, started_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', 1, ?8, ?9, ?10)
		ON CONFLICT (schedule, period_start, period_end) DO UPDATE SET status = 'running', attempts = r.attempts + 1,
			owner = excluded.owner, lease_until = excluded.lease_until, started_at = excluded.started_at,
			finished_at = NULL, next_attempt_at = NULL, error = ''
		WHERE (r.status = 'running' AND r.lease_until < ?10)
			OR (r.status = 'failed' AND r.next_attempt_at <= ?10 AND r.attempts < ?11)
		RETURNING `+runColumns,
		c.Schedule, string(c.Type), string(orgs), micros(c.PeriodStart), micros(c.PeriodEnd), string(c.Format),
		c.Destination, owner, micros(now.Add(lease)), micros(now), maxAttempts)
	if err != nil {
		return report.Run{}, false, classify("claim report run", err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return report.Run{}, false, classify("claim report run", err)
	}
	if len(runs) == 0 {
		return report.Run{}, false, nil
	}
	return runs[0], true, nil
}

// FinishRun records how the run ended, if owner still holds it.
func (s *Store) FinishRun(ctx context.Context, id int64, owner string, res report.RunResult, now time.Time) error {
	var next any
	if res.NextAttemptAt != nil {
		next = res.NextAttemptAt.UnixMicro()
	}
	out, err := s.writer.ExecContext(ctx, `UPDATE audit_report_runs SET status = ?, finished_at = ?, report_id = ?,
			location = ?, size_bytes = ?, sha256 = ?, error = ?, next_attempt_at = ?
		WHERE id = ? AND owner = ? AND status = 'running'`,
		res.Status, micros(now), res.ReportID, res.Location, res.SizeBytes, res.SHA256, res.Error, next, id, owner)
	if err != nil {
		return classify("finish report run", err)
	}
	if n, _ := out.RowsAffected(); n == 0 {
		return audit.Errorf(audit.CodeConflict, "report run %d is no longer held by this replica", id)
	}
	return nil
}

// LastPeriodEnd is the latest period end among the schedule's runs.
func (s *Store) LastPeriodEnd(ctx context.Context, schedule string) (time.Time, bool, error) {
	var end sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT max(period_end) FROM audit_report_runs WHERE schedule = ?`, schedule).Scan(&end)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, classify("read report runs", err)
	}
	if !end.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMicro(end.Int64).UTC(), true, nil
}

// DueRuns lists the runs to take up again.
func (s *Store) DueRuns(ctx context.Context, now time.Time, maxAttempts int) ([]report.Run, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+runColumns+` FROM audit_report_runs
		WHERE (status = 'failed' AND next_attempt_at <= ?1 AND attempts < ?2) OR (status = 'running' AND lease_until < ?1)
		ORDER BY period_end, id`, micros(now), maxAttempts)
	if err != nil {
		return nil, classify("read report runs", err)
	}
	runs, err := scanRuns(rows)
	return runs, classify("read report runs", err)
}

// ListRuns lists runs, newest first.
func (s *Store) ListRuns(ctx context.Context, q report.RunQuery) ([]report.Run, error) {
	query := `SELECT ` + runColumns + ` FROM audit_report_runs WHERE (?1 = '' OR schedule = ?1) AND (?2 = 0 OR id < ?2)
		ORDER BY id DESC LIMIT ?3`
	rows, err := s.reader.QueryContext(ctx, query, q.Schedule, q.After, q.Limit)
	if err != nil {
		return nil, classify("list report runs", err)
	}
	runs, err := scanRuns(rows)
	return runs, classify("list report runs", err)
}
