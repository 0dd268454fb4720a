package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

var (
	_ audit.ExportStore = (*Store)(nil)
	_ audit.SecretStore = (*Store)(nil)
)

// SaveExport keeps an export's manifest (a second save of the same id replaces it).
func (s *Store) SaveExport(ctx context.Context, m audit.ExportManifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return audit.Errorf(audit.CodeInvalid, "save export %s: %w", m.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO audit_exports (id, manifest) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest`, m.ID, data)
	return wrapErr("save export", err)
}

// GetExport returns the manifest with this id.
func (s *Store) GetExport(ctx context.Context, id string) (audit.ExportManifest, error) {
	var m audit.ExportManifest
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT manifest FROM audit_exports WHERE id = $1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, audit.Errorf(audit.CodeNotFound, "export %s: no such export", id)
	}
	if err != nil {
		return m, wrapErr("get export", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, audit.Errorf(audit.CodeUnavailable, "export %s: manifest: %w", id, err)
	}
	return m, nil
}

// Secret returns the shared secret called name, creating it the first time.
// Concurrent first calls agree: the insert that loses the race does nothing,
// and both read the winner's bytes.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	_, _ = rand.Read(fresh)
	var value []byte
	err := s.pool.QueryRow(ctx, `WITH ins AS (
		INSERT INTO audit_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value)
		SELECT value FROM ins UNION ALL SELECT value FROM audit_secrets WHERE name = $1 LIMIT 1`,
		name, fresh).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another replica's insert committed after this statement's snapshot
		// was taken: its row is visible to the next statement.
		err = s.pool.QueryRow(ctx, `SELECT value FROM audit_secrets WHERE name = $1`, name).Scan(&value)
	}
	if err != nil {
		return nil, wrapErr("secret "+name, err)
	}
	return value, nil
}
