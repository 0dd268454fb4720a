package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

// The staged COPY strategy (insertStaged, and insertCopy's way for batches
// holding a stored record, see direct.go): COPY the batch into a temporary
// staging table and move it with one INSERT … SELECT … ON CONFLICT DO NOTHING.
// Each connection creates the staging table once (AfterConnect) instead of once
// per batch, which would churn the system catalogs; ON COMMIT DELETE ROWS
// empties it at the end of every transaction, committed or not. Temporary
// tables live in the session, so this needs session pooling (a transaction-
// pooling PgBouncer in front would break it).

const createStageSQL = `CREATE TEMP TABLE IF NOT EXISTS audit_stage (
	ord bigint, ts timestamptz, ts_raw text, ttl text, principal_id text, organization_id text,
	action text, trt text, tri text, status text, outcome text, hash text, hash_alg text,
	sig text, sig_alg text, ev text, corr text, class text, retention text,
	latency float8, details json, key text, source text, hash_status text,
	sig_status text, record_hash text, received_at timestamptz) ON COMMIT DELETE ROWS`

var stageColumns = []string{"ord", "ts", "ts_raw", "ttl", "principal_id", "organization_id",
	"action", "trt", "tri", "status", "outcome", "hash", "hash_alg",
	"sig", "sig_alg", "ev", "corr", "class", "retention",
	"latency", "details", "key", "source", "hash_status",
	"sig_status", "record_hash", "received_at"}

var copyStageSQL = copySQL("audit_stage", stageColumns)

const insertFromStageSQL = insertIntoSQL + `
FROM audit_stage u` + onConflictSQL

func (s *Store) copyInsert(ctx context.Context, tx pgx.Tx, recs []audit.Record) (pgx.Rows, error) {
	// ord is the record's position in the batch.
	if err := copyRecords(ctx, tx, copyStageSQL, recs, func(i int) int64 { return int64(i) }); err != nil {
		return nil, err
	}
	return tx.Query(ctx, insertFromStageSQL)
}
