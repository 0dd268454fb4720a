package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.KeyStore = (*Store)(nil)

const apiKeyColumns = `id, name, role, organizations, created_by, created_at, expires_at,
	revoked_at, last_used_at, secret_hash, previous_secret_hash, previous_expires_at`

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// microsPtr is an optional instant as stored: microseconds or NULL.
func microsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func scanAPIKey(row rowScanner) (audit.APIKey, error) {
	var k audit.APIKey
	var role, orgs string
	var created, expires, revoked, lastUsed, prevExpires sql.NullInt64
	err := row.Scan(&k.ID, &k.Name, &role, &orgs, &k.CreatedBy, &created, &expires,
		&revoked, &lastUsed, &k.SecretHash, &k.PreviousSecretHash, &prevExpires)
	if err != nil {
		return k, err
	}
	k.Role = audit.Role(role)
	k.CreatedAt = fromMicros(created)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = timePtr(expires), timePtr(revoked), timePtr(lastUsed)
	k.PreviousExpiresAt = timePtr(prevExpires)
	if err := json.Unmarshal([]byte(orgs), &k.Organizations); err != nil {
		return k, fmt.Errorf("api key %s: organizations: %w", k.ID, err)
	}
	return k, nil
}

// CreateAPIKey stores a new key; CodeConflict if its id is taken.
func (s *Store) CreateAPIKey(ctx context.Context, k audit.APIKey) error {
	orgs, err := json.Marshal(k.Organizations)
	if err != nil {
		return audit.Errorf(audit.CodeInvalid, "create api key: organizations: %w", err)
	}
	_, err = s.writer.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, string(k.Role), string(orgs), k.CreatedBy, k.CreatedAt.UnixMicro(),
		microsPtr(k.ExpiresAt), microsPtr(k.RevokedAt), microsPtr(k.LastUsedAt),
		k.SecretHash, k.PreviousSecretHash, microsPtr(k.PreviousExpiresAt))
	if err != nil {
		if code(err) == audit.CodeInvalid {
			return audit.Errorf(audit.CodeConflict, "create api key %s: the id is taken or a value is refused: %w", k.ID, err)
		}
		return classify("create api key", err)
	}
	return nil
}

// GetAPIKey returns the key with this public id; CodeNotFound if none.
func (s *Store) GetAPIKey(ctx context.Context, id string) (audit.APIKey, error) {
	return s.getAPIKey(ctx, s.reader, id)
}

// queryer is what reads need: the reader pool, the writer or a transaction.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) getAPIKey(ctx context.Context, q queryer, id string) (audit.APIKey, error) {
	k, err := scanAPIKey(q.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, audit.Errorf(audit.CodeNotFound, "api key %s: no such key", id)
	}
	if err != nil {
		return k, classify("get api key", err)
	}
	return k, nil
}

// ListAPIKeys returns every key, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]audit.APIKey, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, classify("list api keys", err)
	}
	defer rows.Close()
	var out []audit.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, classify("list api keys", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("list api keys", err)
	}
	return out, nil
}

// RevokeAPIKey marks the key revoked; a second revocation keeps the first time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) (audit.APIKey, error) {
	var k audit.APIKey
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
			at.UnixMicro(), id); err != nil {
			return classify("revoke api key", err)
		}
		var err error
		k, err = s.getAPIKey(ctx, tx, id)
		return err
	})
	return k, err
}

// RotateAPIKey gives the key a new secret and keeps the old one until previousUntil.
func (s *Store) RotateAPIKey(ctx context.Context, id string, secretHash []byte, previousUntil time.Time) (audit.APIKey, error) {
	var k audit.APIKey
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		current, err := s.getAPIKey(ctx, tx, id)
		if err != nil {
			return err
		}
		if current.RevokedAt != nil {
			return audit.Errorf(audit.CodeConflict, "rotate api key %s: the key is revoked", id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET previous_secret_hash = secret_hash,
			previous_expires_at = ?, secret_hash = ? WHERE id = ?`,
			previousUntil.UnixMicro(), secretHash, id); err != nil {
			return classify("rotate api key", err)
		}
		k, err = s.getAPIKey(ctx, tx, id)
		return err
	})
	return k, err
}

// TouchAPIKeys records last use; a time earlier than the stored one is ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	return s.inWriteTx(ctx, func(tx *sql.Tx) error {
		for id, at := range lastUsed {
			if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?)
				WHERE id = ?`, at.UnixMicro(), id); err != nil {
				return classify("touch api keys", err)
			}
		}
		return nil
	})
}
