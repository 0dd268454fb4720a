package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// Run: go test ./postgres -run '^$' -bench . -benchtime 30x -count 3
//
// Every benchmark writes b.N batches of 1,000 eventgen records (~300 bytes of
// details each, hashed and signed) into a fresh, migrated database: the
// partitioned audit_log with the migration's indexes, rows in the current
// month's partition. Records are generated before the timer starts.

const benchBatch = 1000

func benchBatches(b *testing.B, seed uint64) [][]audit.Record {
	g := eventgen.New(seed)
	g.HMACKey = []byte("bench-key")
	out := make([][]audit.Record, b.N)
	for i := range out {
		out[i] = g.Records(benchBatch, "bench")
	}
	return out
}

func reportEventsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

func benchStore(b *testing.B, mode insertMode, setup func(*Store)) {
	s := openTest(b, mode)
	if setup != nil {
		setup(s)
	}
	batches := benchBatches(b, 1)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		res, err := s.StoreBatch(ctx, audit.Batch{Records: batches[i]})
		if err != nil {
			b.Fatal(err)
		}
		if res[len(res)-1].Duplicate {
			b.Fatal("fresh record reported as duplicate")
		}
	}
	b.StopTimer()
	reportEventsPerSecond(b)
}

// BenchmarkStoreBatch is the production path: StoreBatch with the default
// strategy, a direct COPY into audit_log (the batches hold no stored record).
func BenchmarkStoreBatch(b *testing.B) { benchStore(b, insertCopy, nil) }

// BenchmarkStoreBatchStaged is the way for batches holding a stored record:
// COPY into a per-connection staging table, then INSERT … SELECT … ON CONFLICT
// DO NOTHING RETURNING.
func BenchmarkStoreBatchStaged(b *testing.B) { benchStore(b, insertStaged, nil) }

// BenchmarkStoreBatchUnnest is the alternative strategy: one INSERT … SELECT
// FROM unnest(26 array parameters) … ON CONFLICT DO NOTHING RETURNING.
func BenchmarkStoreBatchUnnest(b *testing.B) { benchStore(b, insertUnnest, nil) }

// BenchmarkRawCopyFrom is the floor to compare with: a plain pgx CopyFrom of
// the same rows into the same table, without idempotency, RETURNING or dead
// letters.
func BenchmarkRawCopyFrom(b *testing.B) {
	s := openTest(b, insertCopy)
	batches := benchBatches(b, 1)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditLogColumns, rawCopyRows(batches[i]))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportEventsPerSecond(b)
}

func rawCopyRows(recs []audit.Record) pgx.CopyFromSource {
	return pgx.CopyFromSlice(len(recs), func(j int) ([]any, error) {
		r := &recs[j]
		return []any{r.Time, r.Timestamp, r.TTL, r.PrincipalID, r.OrganizationID, r.Action,
			r.TargetResourceType, r.TargetResourceID, string(r.Status), r.OutcomeDescription, r.Hash,
			r.HashAlgorithm, r.Signature, r.SignatureAlgorithm, r.EventVersion, r.CorrelationID,
			string(r.DataClassification), r.RetentionPolicy, r.ProcessingLatency, []byte(r.Details),
			r.IdempotencyKey, r.Source, r.HashStatus, r.SignatureStatus, r.RecordHash, r.ReceivedAt}, nil
	})
}

// specIndexes are the original's audit_log indexes the migration does not create.
var specIndexes = []string{
	"principal_id", "organization_id", "action", "status", "hash", "target_resource_type",
	"target_resource_id", "data_classification", "retention_policy", "archived_at",
	`"timestamp", status`, "principal_id, action", "data_classification, retention_policy",
}

// queryIndexes are the migrations' query indexes (not the keys).
var queryIndexes = []string{"audit_log_timestamp_id_idx", "audit_log_principal_id_timestamp_id_idx",
	"audit_log_organization_id_timestamp_id_idx", "audit_log_target_resource_idx", "audit_log_correlation_id_idx",
	"audit_log_action_family_idx"}

// searchIndexes007 are the indexes 007_search_indexes creates, and
// before007 the ones it replaces, as 001 created them.
var (
	searchIndexes007 = []string{"audit_log_timestamp_id_idx", "audit_log_organization_id_timestamp_id_idx",
		"audit_log_principal_id_timestamp_id_idx", "audit_log_action_family_idx"}
	before007 = []string{`CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp")`,
		`CREATE INDEX audit_log_principal_id_timestamp_idx ON audit_log (principal_id, "timestamp")`,
		`CREATE INDEX audit_log_organization_id_timestamp_idx ON audit_log (organization_id, "timestamp")`}
)

// BenchmarkStoreBatchIndexes measures what the index choice costs: keys only,
// the migrations' set, that set before 007 added the search indexes, and the
// set plus everything else of §4.1.
func BenchmarkStoreBatchIndexes(b *testing.B) {
	exec := func(s *Store, sql string) {
		if _, err := s.pool.Exec(context.Background(), sql); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("keys-only", func(b *testing.B) {
		benchStore(b, insertCopy, func(s *Store) {
			for _, ix := range queryIndexes {
				exec(s, "DROP INDEX "+ix)
			}
		})
	})
	b.Run("kept", func(b *testing.B) { benchStore(b, insertCopy, nil) })
	// What 007's search indexes cost: the migrations' set as it was before.
	b.Run("before-007", func(b *testing.B) {
		benchStore(b, insertCopy, func(s *Store) {
			for _, ix := range searchIndexes007 {
				exec(s, "DROP INDEX "+ix)
			}
			for _, sql := range before007 {
				exec(s, sql)
			}
		})
	})
	b.Run("spec-4.1-all", func(b *testing.B) {
		benchStore(b, insertCopy, func(s *Store) {
			for i, cols := range specIndexes {
				exec(s, fmt.Sprintf("CREATE INDEX spec_%d ON audit_log (%s)", i, cols))
			}
		})
	})
}

// benchConcurrently runs store(batch) for all b.N batches from `writers`
// goroutines, as the worker does: its Batcher keeps two batches in flight, so
// PostgreSQL can use one backend (one core) per batch.
func benchConcurrently(b *testing.B, writers int, store func(ctx context.Context, recs []audit.Record) error) {
	batches := benchBatches(b, 2)
	ctx := context.Background()
	next := make(chan []audit.Record, len(batches))
	for _, recs := range batches {
		next <- recs
	}
	close(next)
	errs := make(chan error, writers)
	b.ResetTimer()
	for range writers {
		go func() {
			for recs := range next {
				if err := store(ctx, recs); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportEventsPerSecond(b)
}

// BenchmarkStoreBatchConcurrent2 is StoreBatch with two batches in flight, the
// worker's default (storage: two flushers).
func BenchmarkStoreBatchConcurrent2(b *testing.B) {
	s := openTest(b, insertCopy)
	benchConcurrently(b, 2, func(ctx context.Context, recs []audit.Record) error {
		_, err := s.StoreBatch(ctx, audit.Batch{Records: recs})
		return err
	})
}

// BenchmarkRawCopyFromConcurrent2 is the raw CopyFrom floor with two copies in flight.
func BenchmarkRawCopyFromConcurrent2(b *testing.B) {
	s := openTest(b, insertCopy)
	benchConcurrently(b, 2, func(ctx context.Context, recs []audit.Record) error {
		_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditLogColumns, rawCopyRows(recs))
		return err
	})
}
