package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartlogs/audit-worker/internal/migrations"
)

//go:embed migrations/*.up.sql
var migrationFiles embed.FS

// migrationLockKey is the advisory lock that serialises migrations, so that
// workers starting at the same moment do not both apply the same migration.
// Arbitrary, but fixed forever: "audit-mi" in ASCII.
const migrationLockKey int64 = 0x61756469742d6d69

// embeddedMigrations returns the embedded migrations in version order. Files
// are named NNN_name.up.sql; the number is the version recorded in
// audit_schema_migrations, with the name.
func embeddedMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// MigrateURL connects to the database at url and applies the pending migrations
// (the `audit-worker migrate` command).
func MigrateURL(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return wrapErr("migrate: connect", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate(ctx, conn)
}

// Migrate applies the pending migrations using a connection of pool.
//
// All pending migrations are applied in one transaction that first takes a
// transaction-level advisory lock: a second worker migrating at the same time
// waits, then finds nothing left to do. Either every pending migration is
// applied and recorded in audit_schema_migrations, or none is.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return wrapErr("migrate: acquire connection", err)
	}
	defer conn.Release()
	return migrate(ctx, conn.Conn())
}

func migrate(ctx context.Context, conn *pgx.Conn) error {
	all, err := embeddedMigrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return wrapErr("migrate: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
		return wrapErr("migrate: lock", err)
	}
	// Created under the lock: CREATE TABLE IF NOT EXISTS is not safe against a
	// concurrent creator.
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS audit_schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return wrapErr("migrate: create version table", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM audit_schema_migrations")
	if err != nil {
		return wrapErr("migrate: read versions", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return wrapErr("migrate: read versions", err)
	}
	done := make(map[int]bool, len(applied))
	for _, v := range applied {
		done[int(v)] = true
	}
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		// Simple protocol: a migration file holds several statements.
		if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			return wrapErr("migrate: apply "+m.ID(), err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO audit_schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return wrapErr("migrate: record "+m.ID(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return wrapErr("migrate: commit", err)
	}
	return nil
}
