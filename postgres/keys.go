package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	audit "github.com/smartlogs/audit-worker"
)

var _ audit.KeyStore = (*Store)(nil)

const apiKeyColumns = `id, name, role, organizations, created_by, created_at, expires_at,
	revoked_at, last_used_at, secret_hash, previous_secret_hash, previous_expires_at`

func scanAPIKey(row pgx.Row) (audit.APIKey, error) {
	var k audit.APIKey
	var role string
	err := row.Scan(&k.ID, &k.Name, &role, &k.Organizations, &k.CreatedBy, &k.CreatedAt, &k.ExpiresAt,
		&k.RevokedAt, &k.LastUsedAt, &k.SecretHash, &k.PreviousSecretHash, &k.PreviousExpiresAt)
	k.Role = audit.Role(role)
	k.CreatedAt = k.CreatedAt.UTC()
	for _, t := range []*time.Time{k.ExpiresAt, k.RevokedAt, k.LastUsedAt, k.PreviousExpiresAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return k, err
}

// CreateAPIKey stores a new key; CodeConflict if its id is taken.
func (s *Store) CreateAPIKey(ctx context.Context, k audit.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.Name, string(k.Role), k.Organizations, k.CreatedBy, k.CreatedAt, k.ExpiresAt,
		k.RevokedAt, k.LastUsedAt, k.SecretHash, k.PreviousSecretHash, k.PreviousExpiresAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return audit.Errorf(audit.CodeConflict, "create api key %s: the id is taken", k.ID)
	}
	if err != nil {
		return wrapErr("create api key", err)
	}
	return nil
}

// GetAPIKey returns the key with this public id; CodeNotFound if none.
func (s *Store) GetAPIKey(ctx context.Context, id string) (audit.APIKey, error) {
	return getAPIKey(ctx, s.pool, id)
}

// rowQueryer is the pool or a transaction.
type rowQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getAPIKey(ctx context.Context, q rowQueryer, id string) (audit.APIKey, error) {
	k, err := scanAPIKey(q.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, audit.Errorf(audit.CodeNotFound, "api key %s: no such key", id)
	}
	if err != nil {
		return k, wrapErr("get api key", err)
	}
	return k, nil
}

// ListAPIKeys returns every key, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]audit.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, wrapErr("list api keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.APIKey, error) { return scanAPIKey(row) })
	if err != nil {
		return nil, wrapErr("list api keys", err)
	}
	return keys, nil
}

// RevokeAPIKey marks the key revoked; a second revocation keeps the first time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) (audit.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2)
		WHERE id = $1 RETURNING `+apiKeyColumns, id, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, audit.Errorf(audit.CodeNotFound, "api key %s: no such key", id)
	}
	if err != nil {
		return k, wrapErr("revoke api key", err)
	}
	return k, nil
}

// RotateAPIKey gives the key a new secret and keeps the old one until previousUntil.
func (s *Store) RotateAPIKey(ctx context.Context, id string, secretHash []byte, previousUntil time.Time) (audit.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET previous_secret_hash = secret_hash,
		previous_expires_at = $2, secret_hash = $3
		WHERE id = $1 AND revoked_at IS NULL RETURNING `+apiKeyColumns, id, previousUntil, secretHash))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, getErr := getAPIKey(ctx, s.pool, id); getErr != nil {
			return k, getErr
		}
		return k, audit.Errorf(audit.CodeConflict, "rotate api key %s: the key is revoked", id)
	}
	if err != nil {
		return k, wrapErr("rotate api key", err)
	}
	return k, nil
}

// TouchAPIKeys records last use; a time earlier than the stored one is ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(lastUsed))
	times := make([]time.Time, 0, len(lastUsed))
	for id, at := range lastUsed {
		ids, times = append(ids, id), append(times, at)
	}
	_, err := s.pool.Exec(ctx, `UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)
		FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at) WHERE k.id = u.id`, ids, times)
	if err != nil {
		return wrapErr("touch api keys", err)
	}
	return nil
}
