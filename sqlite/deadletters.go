package sqlite

import (
	"context"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.DeadLetterMaintainer = (*Store)(nil)

// pruneDeadLettersByQuotaSQL deletes every dead letter beyond the newest ?1
// (0: no bound) or beyond the newest whose payloads add up to ?2 bytes (0: no
// bound). length() of a BLOB reads its size from the record header, not the
// payload's pages.
const pruneDeadLettersByQuotaSQL = `
DELETE FROM audit_dead_letter WHERE id IN (
	SELECT id FROM (
		SELECT id,
			row_number() OVER newest AS entries,
			sum(coalesce(length(payload), 0)) OVER newest AS bytes
		FROM audit_dead_letter
		WINDOW newest AS (ORDER BY id DESC)
	)
	WHERE (?1 > 0 AND entries > ?1) OR (?2 > 0 AND bytes > ?2)
)`

// PruneDeadLetters applies the retention, then the quota, on the writer
// connection, each in one statement.
func (s *Store) PruneDeadLetters(ctx context.Context, limits audit.DeadLetterLimits, now time.Time) (audit.DeadLetterPruning, error) {
	var p audit.DeadLetterPruning
	if limits.Retention > 0 {
		n, err := s.deleteDeadLetters(ctx, `DELETE FROM audit_dead_letter WHERE last_failed_at < ?`,
			now.Add(-limits.Retention).UnixMicro())
		if err != nil {
			return p, classify("prune dead letters by retention", err)
		}
		p.ByRetention = n
	}
	if limits.MaxEntries > 0 || limits.MaxBytes > 0 {
		n, err := s.deleteDeadLetters(ctx, pruneDeadLettersByQuotaSQL, limits.MaxEntries, limits.MaxBytes)
		if err != nil {
			return p, classify("prune dead letters by quota", err)
		}
		p.ByQuota = n
	}
	var err error
	p.Left, err = s.DeadLetterUsage(ctx)
	return p, err
}

func (s *Store) deleteDeadLetters(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.writer.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeadLetterUsage counts the dead letters and their payload bytes.
func (s *Store) DeadLetterUsage(ctx context.Context) (audit.DeadLetterUsage, error) {
	var u audit.DeadLetterUsage
	err := s.reader.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(payload)), 0) FROM audit_dead_letter`).
		Scan(&u.Entries, &u.Bytes)
	if err != nil {
		return u, classify("count dead letters", err)
	}
	return u, nil
}

// DeleteDeadLetter removes one dead letter.
func (s *Store) DeleteDeadLetter(ctx context.Context, id int64) error {
	n, err := s.deleteDeadLetters(ctx, `DELETE FROM audit_dead_letter WHERE id = ?`, id)
	if err != nil {
		return classify("delete dead letter", err)
	}
	if n == 0 {
		return audit.Errorf(audit.CodeNotFound, "dead letter %d: no such dead letter", id)
	}
	return nil
}
