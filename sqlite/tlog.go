package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.TreeStore = (*Store)(nil)

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

// PendingRows returns rows that are not leaves yet; the anti-join probes the
// unique event_id index of tlog_leaves.
func (s *Store) PendingRows(ctx context.Context, afterSeq, throughSeq int64, limit int) ([]audit.LeafRow, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT a.id, a.timestamp, a.record_hash FROM audit_log a
		WHERE a.id > ? AND a.id <= ? AND NOT EXISTS (SELECT 1 FROM tlog_leaves l WHERE l.event_id = a.id)
		ORDER BY a.id LIMIT ?`, afterSeq, throughSeq, limit)
	if err != nil {
		return nil, classify("pending tree rows", err)
	}
	defer rows.Close()
	var out []audit.LeafRow
	for rows.Next() {
		var r audit.LeafRow
		var ts int64
		var hash string
		if err := rows.Scan(&r.Seq, &ts, &hash); err != nil {
			return nil, classify("pending tree rows", err)
		}
		r.Time = time.UnixMicro(ts).UTC()
		if r.RecordHash, err = decodeRecordHash(r.Seq, hash); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, classify("pending tree rows", rows.Err())
}

// Floor returns the saved integrator floor.
func (s *Store) Floor(ctx context.Context) (int64, error) {
	var floor int64
	err := s.reader.QueryRowContext(ctx, `SELECT seq FROM tlog_floor`).Scan(&floor)
	return floor, classify("tree floor", err)
}

// SaveFloor raises the saved integrator floor.
func (s *Store) SaveFloor(ctx context.Context, floor int64) error {
	_, err := s.writer.ExecContext(ctx, `UPDATE tlog_floor SET seq = ? WHERE seq < ?`, floor, floor)
	return classify("save tree floor", err)
}

// Horizon is always zero: rows are written by one connection, one
// transaction after the other, so they become visible in Seq order.
func (s *Store) Horizon(context.Context) (audit.TxHorizon, error) { return audit.TxHorizon{}, nil }

// TreeSize returns the number of leaves.
func (s *Store) TreeSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(max(leaf_index) + 1, 0) FROM tlog_leaves`).Scan(&n)
	return n, classify("tree size", err)
}

// AppendLeaves writes the leaves and hashes in one write transaction; the
// single writer makes the size check and the append atomic.
func (s *Store) AppendLeaves(ctx context.Context, size int64, rows []audit.LeafRow, hashes [][32]byte) error {
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(max(leaf_index) + 1, 0) FROM tlog_leaves`).Scan(&n); err != nil {
			return err
		}
		if n != size {
			return audit.Errorf(audit.CodeConflict, "the tree has %d leaves, not %d: another integrator appended", n, size)
		}
		leaf, err := tx.PrepareContext(ctx, `INSERT INTO tlog_leaves (leaf_index, event_id, event_time, leaf_data) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer leaf.Close()
		for i, r := range rows {
			if _, err := leaf.ExecContext(ctx, size+int64(i), r.Seq, r.Time.UnixMicro(), r.RecordHash[:]); err != nil {
				return err
			}
		}
		hash, err := tx.PrepareContext(ctx, `INSERT INTO tlog_hashes (hash_index, hash) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer hash.Close()
		first := tlog.StoredHashCount(size)
		for i, h := range hashes {
			if _, err := hash.ExecContext(ctx, first+int64(i), h[:]); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case audit.ErrorCode(err) != "":
		return err
	case strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return audit.Errorf(audit.CodeConflict, "append leaves: %w", err)
	}
	return classify("append leaves", err)
}

// ReadHashes returns the stored hashes at indexes, in that order.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	query := `SELECT hash_index, hash FROM tlog_hashes WHERE hash_index BETWEEN ? AND ?`
	args := []any{indexes[0], indexes[len(indexes)-1]}
	if !contiguous(indexes) {
		// Proofs read a few dozen scattered hashes; a run (verification
		// reads a page's) is one range, whatever its length.
		args = make([]any, len(indexes))
		for i, x := range indexes {
			args[i] = x
		}
		query = `SELECT hash_index, hash FROM tlog_hashes WHERE hash_index IN (` + strings.Repeat("?,", len(indexes)-1) + `?)`
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify("read tree hashes", err)
	}
	defer rows.Close()
	found := make(map[int64][32]byte, len(indexes))
	for rows.Next() {
		var i int64
		var b []byte
		if err := rows.Scan(&i, &b); err != nil {
			return nil, classify("read tree hashes", err)
		}
		var h [32]byte
		copy(h[:], b)
		found[i] = h
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read tree hashes", err)
	}
	out := make([][32]byte, len(indexes))
	for k, i := range indexes {
		h, ok := found[i]
		if !ok {
			return nil, audit.Errorf(audit.CodeNotFound, "stored tree hash %d is missing", i)
		}
		out[k] = h
	}
	return out, nil
}

// contiguous reports whether indexes are n, n+1, n+2, ...
func contiguous(indexes []int64) bool {
	for i := 1; i < len(indexes); i++ {
		if indexes[i] != indexes[i-1]+1 {
			return false
		}
	}
	return true
}

// LeafOf returns the leaf of the row seq.
func (s *Store) LeafOf(ctx context.Context, seq int64) (audit.Leaf, error) {
	var l audit.Leaf
	var ts int64
	var data []byte
	err := s.reader.QueryRowContext(ctx, `SELECT leaf_index, event_id, event_time, leaf_data FROM tlog_leaves WHERE event_id = ?`, seq).
		Scan(&l.Index, &l.Seq, &ts, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return l, audit.Errorf(audit.CodeNotFound, "event %d is not in the tree yet", seq)
	}
	if err != nil {
		return l, classify("leaf of event", err)
	}
	l.Time = time.UnixMicro(ts).UTC()
	copy(l.RecordHash[:], data)
	return l, nil
}

// LeafEvents reads a page of leaves, then their rows by id.
func (s *Store) LeafEvents(ctx context.Context, from int64, limit int) ([]audit.LeafEvent, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT leaf_index, event_id, event_time, leaf_data FROM tlog_leaves
		WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?`, from, limit)
	if err != nil {
		return nil, classify("read leaves", err)
	}
	defer rows.Close()
	var out []audit.LeafEvent
	for rows.Next() {
		var le audit.LeafEvent
		var ts int64
		var data []byte
		if err := rows.Scan(&le.Index, &le.Seq, &ts, &data); err != nil {
			return nil, classify("read leaves", err)
		}
		le.Time = time.UnixMicro(ts).UTC()
		copy(le.RecordHash[:], data)
		out = append(out, le)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read leaves", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	events, err := s.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_log WHERE id IN
		(SELECT event_id FROM tlog_leaves WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?)`, from, limit)
	if err != nil {
		return nil, classify("read leaf rows", err)
	}
	found, err := scanEvents(events, len(out))
	if err != nil {
		return nil, classify("read leaf rows", err)
	}
	bySeq := make(map[int64]*audit.StoredEvent, len(found))
	for i := range found {
		bySeq[found[i].Seq] = &found[i]
	}
	for i := range out {
		out[i].Event = bySeq[out[i].Seq]
	}
	return out, nil
}

// AddCheckpoint stores c.
func (s *Store) AddCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	created := c.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.writer.ExecContext(ctx, `INSERT INTO tlog_checkpoints (size, note, created_at) VALUES (?, ?, ?)`,
		c.Size, c.Note, created.UnixMicro())
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return audit.Errorf(audit.CodeConflict, "a checkpoint of size %d is stored already", c.Size)
	}
	return classify("add checkpoint", err)
}

func (s *Store) checkpoints(ctx context.Context, what, query string, args ...any) ([]audit.Checkpoint, error) {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(what, err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var created int64
		if err := rows.Scan(&c.Size, &c.Note, &created); err != nil {
			return nil, classify(what, err)
		}
		c.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, c)
	}
	return out, classify(what, rows.Err())
}

func (s *Store) oneCheckpoint(ctx context.Context, what, query string, args ...any) (audit.Checkpoint, error) {
	cs, err := s.checkpoints(ctx, what, query, args...)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	if len(cs) == 0 {
		return audit.Checkpoint{}, audit.Errorf(audit.CodeNotFound, "%s: no such checkpoint", what)
	}
	return cs[0], nil
}

// LatestCheckpoint returns the checkpoint of the largest tree.
func (s *Store) LatestCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	return s.oneCheckpoint(ctx, "latest checkpoint", `SELECT size, note, created_at FROM tlog_checkpoints ORDER BY size DESC LIMIT 1`)
}

// CheckpointAt returns the checkpoint of a tree of size leaves.
func (s *Store) CheckpointAt(ctx context.Context, size int64) (audit.Checkpoint, error) {
	return s.oneCheckpoint(ctx, "checkpoint", `SELECT size, note, created_at FROM tlog_checkpoints WHERE size = ?`, size)
}

// Checkpoints returns checkpoints by size, after afterSize.
func (s *Store) Checkpoints(ctx context.Context, afterSize int64, limit int) ([]audit.Checkpoint, error) {
	return s.checkpoints(ctx, "list checkpoints", `SELECT size, note, created_at FROM tlog_checkpoints WHERE size > ? ORDER BY size LIMIT ?`, afterSize, limit)
}

// LockIntegrator: the store's single writer already serialises appends;
// this lock keeps a second integrator of the same process from running.
func (s *Store) LockIntegrator(context.Context) (func(), error) {
	if !s.integrator.TryLock() {
		return nil, audit.Errorf(audit.CodeConflict, "another integrator of this database is running")
	}
	return s.integrator.Unlock, nil
}
