package postgres

import (
	"context"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.DeadLetterMaintainer = (*Store)(nil)

// pruneDeadLettersByQuotaSQL deletes every dead letter beyond the newest $1
// (0: no bound) or beyond the newest whose payloads add up to $2 bytes (0: no
// bound). octet_length reads a stored payload's size without detoasting it.
const pruneDeadLettersByQuotaSQL = `
DELETE FROM audit_dead_letter WHERE id IN (
	SELECT id FROM (
		SELECT id,
			row_number() OVER newest AS entries,
			sum(octet_length(payload)) OVER newest AS bytes
		FROM audit_dead_letter
		WINDOW newest AS (ORDER BY id DESC)
	) kept
	WHERE ($1 > 0 AND entries > $1) OR ($2 > 0 AND bytes > $2)
)`

// PruneDeadLetters applies the retention, then the quota, each in one statement.
func (s *Store) PruneDeadLetters(ctx context.Context, limits audit.DeadLetterLimits, now time.Time) (audit.DeadLetterPruning, error) {
	var p audit.DeadLetterPruning
	if limits.Retention > 0 {
		tag, err := s.pool.Exec(ctx, `DELETE FROM audit_dead_letter WHERE last_failed_at < $1`, now.Add(-limits.Retention))
		if err != nil {
			return p, wrapErr("prune dead letters by retention", err)
		}
		p.ByRetention = tag.RowsAffected()
	}
	if limits.MaxEntries > 0 || limits.MaxBytes > 0 {
		tag, err := s.pool.Exec(ctx, pruneDeadLettersByQuotaSQL, limits.MaxEntries, limits.MaxBytes)
		if err != nil {
			return p, wrapErr("prune dead letters by quota", err)
		}
		p.ByQuota = tag.RowsAffected()
	}
	var err error
	p.Left, err = s.DeadLetterUsage(ctx)
	return p, err
}

// DeadLetterUsage counts the dead letters and their payload bytes.
func (s *Store) DeadLetterUsage(ctx context.Context) (audit.DeadLetterUsage, error) {
	var u audit.DeadLetterUsage
	err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(payload)), 0) FROM audit_dead_letter`).
		Scan(&u.Entries, &u.Bytes)
	if err != nil {
		return u, wrapErr("count dead letters", err)
	}
	return u, nil
}

// DeleteDeadLetter removes one dead letter.
func (s *Store) DeleteDeadLetter(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_dead_letter WHERE id = $1`, id)
	if err != nil {
		return wrapErr("delete dead letter", err)
	}
	if tag.RowsAffected() == 0 {
		return audit.Errorf(audit.CodeNotFound, "dead letter %d: no such dead letter", id)
	}
	return nil
}
