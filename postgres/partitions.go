package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitionLockKey serialises partition creation between workers: "audit-pa".
const partitionLockKey int64 = 0x61756469742d7061

// monthStart returns the first instant of t's month, in UTC. Partition bounds
// are UTC months, whatever the server's or the worker's time zone.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PartitionName is the name of the monthly partition holding t: audit_log_YYYY_MM.
func PartitionName(t time.Time) string {
	m := monthStart(t)
	return fmt.Sprintf("audit_log_%04d_%02d", m.Year(), int(m.Month()))
}

// EnsurePartitions creates the monthly partitions for now's month and the
// PartitionsAhead months after it, those that do not exist yet. It is safe to
// run from several workers at once.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) error {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass`)
	if err != nil {
		return wrapErr("ensure partitions", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return wrapErr("ensure partitions", err)
	}
	existing := make(map[string]bool, len(names))
	for _, n := range names {
		existing[n] = true
	}
	start := monthStart(now)
	for i := 0; i <= s.ahead; i++ {
		m := start.AddDate(0, i, 0)
		if existing[PartitionName(m)] {
			continue
		}
		if err := s.createPartition(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// createPartition creates the partition for month m. Rows of that month already
// in the DEFAULT partition (they arrived before the partition existed) would
// make CREATE TABLE … PARTITION OF fail, so within one transaction they are
// moved out of the default partition, the partition is created, and they are
// put into it, keeping their ids. Inserts are blocked meanwhile (SHARE ROW
// EXCLUSIVE on audit_log, taken first so that the lock order is the same as an
// insert's: parent, then partitions), so no new row of that month can slip
// into the default partition between the move and the creation.
func (s *Store) createPartition(ctx context.Context, m time.Time) error {
	name := PartitionName(m)
	next := m.AddDate(0, 1, 0)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
			return err
		}
		if exists { // another worker was first
			return nil
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE audit_log_moving (LIKE audit_log) ON COMMIT DROP"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `WITH moved AS (
				DELETE FROM audit_log_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *)
			INSERT INTO audit_log_moving SELECT * FROM moved`, m, next)
		if err != nil {
			return err
		}
		// DDL cannot take parameters; the name and bounds come from m only.
		ddl := fmt.Sprintf(`CREATE TABLE %s PARTITION OF audit_log FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{name}.Sanitize(), m.Format("2006-01-02 15:04:05Z07:00"), next.Format("2006-01-02 15:04:05Z07:00"))
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return err
		}
		if moved := tag.RowsAffected(); moved > 0 {
			if _, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{name}.Sanitize()+" SELECT * FROM audit_log_moving"); err != nil {
				return err
			}
			s.log.InfoContext(ctx, "moved rows out of the default partition", "partition", name, "rows", moved)
		}
		s.log.InfoContext(ctx, "created partition", "partition", name, "from", m, "to", next)
		return nil
	})
	if err != nil {
		return wrapErr("create partition "+name, err)
	}
	return nil
}

// MaintainPartitions runs EnsurePartitions now and then every interval until
// ctx ends, so that next months' partitions always exist before their first
// event. Failures are logged and retried at the next tick.
func (s *Store) MaintainPartitions(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 6 * time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.EnsurePartitions(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "partition maintenance failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
