package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	audit "github.com/smartlogs/audit-worker"
)

// The direct path of insertCopy: most batches hold no record that is stored
// already (duplicates come only with redeliveries: a crash between commit and
// acknowledgement, a stalled job run twice), so StoreBatch first COPYs the
// batch straight into audit_log, with ids drawn from the sequence beforehand.
// That saves the staging table's write and read and the INSERT … SELECT: about
// a quarter of PostgreSQL's work per event (BenchmarkStoreBatch, direct versus
// staged). A stored record makes the COPY fail on the unique index; the
// transaction is then run again the staged way, which skips duplicates. As
// redeliveries come in runs, the batches of the next directPause go staged at
// once.

// directPause is how long after a duplicate StoreBatch goes staged directly.
const directPause = 10 * time.Second

var copyDirectSQL = copySQL("audit_log", append([]string{"id"}, auditLogColumns...))

// auditLogColumns are the columns insertIntoSQL fills, in its order.
var auditLogColumns = []string{"timestamp", "timestamp_raw", "ttl", "principal_id", "organization_id", "action",
	"target_resource_type", "target_resource_id", "status", "outcome_description", "hash",
	"hash_algorithm", "signature", "signature_algorithm", "event_version", "correlation_id",
	"data_classification", "retention_policy", "processing_latency", "details",
	"idempotency_key", "source", "hash_status", "signature_status", "record_hash", "received_at"}

// nextIDsSQL draws n ids, in order, as the staged INSERT's ORDER BY ord would.
const nextIDsSQL = `SELECT nextval('audit_log_id_seq') FROM generate_series(1, $1::int) ORDER BY 1`

// errStoredAlready marks a direct COPY that met a stored record.
var errStoredAlready = errors.New("a record of the batch is stored already")

// directAllowed reports whether no duplicate was met within directPause.
func (s *Store) directAllowed(now time.Time) bool {
	return now.UnixNano() >= s.directAfter.Load()
}

func (s *Store) pauseDirect(now time.Time) {
	s.directAfter.Store(now.Add(directPause).UnixNano())
}

// copyDirect COPYs the records into audit_log with fresh ids and fills
// results; errStoredAlready when one of them is stored already.
func copyDirect(ctx context.Context, tx pgx.Tx, recs []audit.Record, results []audit.StoreResult) error {
	rows, _ := tx.Query(ctx, nextIDsSQL, len(recs))
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("draw ids: %w", err)
	}
	if len(ids) != len(recs) || !slices.IsSorted(ids) {
		return fmt.Errorf("draw ids: got %d for %d records", len(ids), len(recs))
	}
	if err := copyRecords(ctx, tx, copyDirectSQL, recs, func(i int) int64 { return ids[i] }); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
			return errStoredAlready
		}
		return err
	}
	for i, id := range ids {
		results[i] = audit.StoreResult{Seq: id}
	}
	return nil
}
