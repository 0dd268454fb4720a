package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.TreeStore = (*Store)(nil)

// Advisory lock keys of the tree, fixed forever: "audit-tl" and "audit-ta" in
// ASCII. The first is held for as long as a replica integrates; the second,
// transaction-scoped, serialises appends.
const (
	integratorLockKey int64 = 0x61756469742d746c
	appendLockKey     int64 = 0x61756469742d7461
)

// decodeRecordHash reads a row's hex record hash as the leaf's 32 bytes.
func decodeRecordHash(seq int64, s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, audit.Errorf(audit.CodeIntegrity, "row %d: record hash %q is not 32 bytes of hex", seq, s)
	}
	copy(h[:], b)
	return h, nil
}

// PendingRows returns rows that are not leaves yet. The anti-join probes the
// unique event_id index of tlog_leaves; afterSeq and throughSeq bound the
// walk of audit_log.
func (s *Store) PendingRows(ctx context.Context, afterSeq, throughSeq int64, limit int) ([]audit.LeafRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, a."timestamp", a.record_hash FROM audit_log a
		WHERE a.id > $1 AND a.id <= $2 AND NOT EXISTS (SELECT 1 FROM tlog_leaves l WHERE l.event_id = a.id)
		ORDER BY a.id LIMIT $3`, afterSeq, throughSeq, limit)
	if err != nil {
		return nil, wrapErr("pending tree rows", err)
	}
	defer rows.Close()
	var out []audit.LeafRow
	for rows.Next() {
		var r audit.LeafRow
		var hash string
		if err := rows.Scan(&r.Seq, &r.Time, &hash); err != nil {
			return nil, wrapErr("pending tree rows", err)
		}
		if r.RecordHash, err = decodeRecordHash(r.Seq, hash); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("pending tree rows", err)
	}
	return out, nil
}

// Floor returns the saved integrator floor.
func (s *Store) Floor(ctx context.Context) (int64, error) {
	var floor int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM tlog_floor`).Scan(&floor)
	return floor, wrapErr("tree floor", err)
}

// SaveFloor raises the saved integrator floor.
func (s *Store) SaveFloor(ctx context.Context, floor int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE tlog_floor SET seq = $1 WHERE seq < $1`, floor)
	return wrapErr("save tree floor", err)
}

// Horizon reads the current snapshot's xmin and xmax: a transaction that
// drew a Seq and has not committed yet has an id at or above xmin.
func (s *Store) Horizon(ctx context.Context) (audit.TxHorizon, error) {
	var h audit.TxHorizon
	err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint
		FROM pg_current_snapshot() AS s`).Scan(&h.Xmin, &h.Xmax)
	if err != nil {
		return h, wrapErr("transaction horizon", err)
	}
	return h, nil
}

// TreeSize returns the number of leaves.
func (s *Store) TreeSize(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(leaf_index) + 1, 0) FROM tlog_leaves`).Scan(&n); err != nil {
		return 0, wrapErr("tree size", err)
	}
	return n, nil
}

// AppendLeaves copies the leaves and hashes in one transaction, under a
// transaction-scoped advisory lock so that the size check and the append
// cannot interleave with another appender's.
func (s *Store) AppendLeaves(ctx context.Context, size int64, rows []audit.LeafRow, hashes [][32]byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", appendLockKey); err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(max(leaf_index) + 1, 0) FROM tlog_leaves`).Scan(&n); err != nil {
			return err
		}
		if n != size {
			return audit.Errorf(audit.CodeConflict, "the tree has %d leaves, not %d: another integrator appended", n, size)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tlog_leaves"}, []string{"leaf_index", "event_id", "event_time", "leaf_data"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				return []any{size + int64(i), rows[i].Seq, rows[i].Time, rows[i].RecordHash[:]}, nil
			})); err != nil {
			return err
		}
		return appendTiles(ctx, tx, size, int64(len(rows)), hashes)
	})
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case audit.ErrorCode(err) != "":
		return err
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return audit.Errorf(audit.CodeConflict, "append leaves: %w", err)
	}
	return wrapErr("append leaves", err)
}

// LeafOf returns the leaf of the row seq.
func (s *Store) LeafOf(ctx context.Context, seq int64) (audit.Leaf, error) {
	var l audit.Leaf
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT leaf_index, event_id, event_time, leaf_data FROM tlog_leaves WHERE event_id = $1`, seq).
		Scan(&l.Index, &l.Seq, &l.Time, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, audit.Errorf(audit.CodeNotFound, "event %d is not in the tree yet", seq)
	}
	if err != nil {
		return l, wrapErr("leaf of event", err)
	}
	copy(l.RecordHash[:], data)
	return l, nil
}

// leafRangeGap: ids of a page of leaves closer than this are read in one
// range, the rows between them that are not in the page included.
const leafRangeGap = 1000

// AddCheckpoint stores c.
func (s *Store) AddCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	created := c.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tlog_checkpoints (size, note, created_at) VALUES ($1, $2, $3)`, c.Size, c.Note, created)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return audit.Errorf(audit.CodeConflict, "a checkpoint of size %d is stored already", c.Size)
	}
	return wrapErr("add checkpoint", err)
}

func (s *Store) oneCheckpoint(ctx context.Context, what, query string, args ...any) (audit.Checkpoint, error) {
	var c audit.Checkpoint
	err := s.pool.QueryRow(ctx, query, args...).Scan(&c.Size, &c.Note, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, audit.Errorf(audit.CodeNotFound, "%s: no such checkpoint", what)
	}
	return c, wrapErr(what, err)
}

// LatestCheckpoint returns the checkpoint of the largest tree.
func (s *Store) LatestCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	return s.oneCheckpoint(ctx, "latest checkpoint", `SELECT size, note, created_at FROM tlog_checkpoints ORDER BY size DESC LIMIT 1`)
}

// CheckpointAt returns the checkpoint of a tree of size leaves.
func (s *Store) CheckpointAt(ctx context.Context, size int64) (audit.Checkpoint, error) {
	return s.oneCheckpoint(ctx, "checkpoint", `SELECT size, note, created_at FROM tlog_checkpoints WHERE size = $1`, size)
}

// Checkpoints returns checkpoints by size, after afterSize.
func (s *Store) Checkpoints(ctx context.Context, afterSize int64, limit int) ([]audit.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT size, note, created_at FROM tlog_checkpoints WHERE size > $1 ORDER BY size LIMIT $2`, afterSize, limit)
	if err != nil {
		return nil, wrapErr("list checkpoints", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Checkpoint, error) {
		var c audit.Checkpoint
		return c, r.Scan(&c.Size, &c.Note, &c.CreatedAt)
	})
	return out, wrapErr("list checkpoints", err)
}

// LockIntegrator takes a session advisory lock on a connection of its own,
// outside the pool: it is held until unlock, or until that connection dies.
func (s *Store) LockIntegrator(ctx context.Context) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, wrapErr("integrator lock: connect", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", integratorLockKey).Scan(&ok); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, wrapErr("integrator lock", err)
	}
	if !ok {
		conn.Close(context.WithoutCancel(ctx))
		return nil, audit.Errorf(audit.CodeConflict, "another replica integrates the tree")
	}
	return func() {
		// Closing the session releases its advisory locks.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(ctx)
	}, nil
}
