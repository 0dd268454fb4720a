package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

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
	_, err = s.writer.ExecContext(ctx, `INSERT INTO audit_exports (id, manifest, created_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest`, m.ID, string(data), time.Now().UnixMicro())
	return classify("save export", err)
}

// GetExport returns the manifest with this id.
func (s *Store) GetExport(ctx context.Context, id string) (audit.ExportManifest, error) {
	var m audit.ExportManifest
	var data string
	err := s.reader.QueryRowContext(ctx, `SELECT manifest FROM audit_exports WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return m, audit.Errorf(audit.CodeNotFound, "export %s: no such export", id)
	}
	if err != nil {
		return m, classify("get export", err)
	}
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return m, audit.Errorf(audit.CodeUnavailable, "export %s: manifest: %w", id, err)
	}
	return m, nil
}

// Secret returns the shared secret called name, creating it the first time.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	_, _ = rand.Read(fresh)
	var value []byte
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_secrets (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, fresh, time.Now().UnixMicro()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM audit_secrets WHERE name = ?`, name).Scan(&value)
	})
	if err != nil {
		return nil, classify("secret "+name, err)
	}
	return value, nil
}
