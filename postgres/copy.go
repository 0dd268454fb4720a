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

const insertFromStageSQL = insertIntoSQL + `
FROM audit_stage u` + onConflictSQL

func (s *Store) copyInsert(ctx context.Context, tx pgx.Tx, recs []audit.Record) (pgx.Rows, error) {
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_stage"}, stageColumns, &stageSource{recs: recs, i: -1}); err != nil {
		return nil, err
	}
	return tx.Query(ctx, insertFromStageSQL)
}

// stageSource feeds records to COPY, reusing one row of values. It passes
// pointers to the record's fields: a pointer fits in an interface value without
// an allocation, where a string or time.Time would be copied to the heap, once
// per column and row.
type stageSource struct {
	recs   []audit.Record
	i      int
	row    [27]any
	ord    int64
	status string
	class  string
}

func (s *stageSource) Next() bool { s.i++; return s.i < len(s.recs) }
func (s *stageSource) Err() error { return nil }

func (s *stageSource) Values() ([]any, error) {
	r := &s.recs[s.i]
	s.ord, s.status, s.class = int64(s.i), string(r.Status), string(r.DataClassification)
	var details any // nil: NULL
	if len(r.Details) > 0 {
		// As *[]byte, not *json.RawMessage: pgx sends []byte to a json column
		// as it is, but runs other values through json.Marshal, which would
		// compact the producer's bytes and break the record hash.
		details = (*[]byte)(&r.Details)
	}
	s.row = [27]any{&s.ord, &r.Time, &r.Timestamp, &r.TTL, &r.PrincipalID, &r.OrganizationID,
		&r.Action, &r.TargetResourceType, &r.TargetResourceID, &s.status, &r.OutcomeDescription, &r.Hash, &r.HashAlgorithm,
		&r.Signature, &r.SignatureAlgorithm, &r.EventVersion, &r.CorrelationID, &s.class, &r.RetentionPolicy,
		r.ProcessingLatency, details, &r.IdempotencyKey, &r.Source, &r.HashStatus,
		&r.SignatureStatus, &r.RecordHash, &r.ReceivedAt}
	return s.row[:], nil
}
