package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

// insertMode selects how StoreBatch sends records. All are set-based and
// idempotent. insertStaged won BenchmarkStoreBatch against insertUnnest
// (medians ~19,600 versus ~14,000 events/s on the 2-core test VM, see
// bench_test.go); insertCopy, the default, adds the direct path in front of
// it. The others are kept so that the benchmarks and tests can compare.
type insertMode int

const (
	// insertCopy COPYs the batch straight into audit_log, and goes the
	// insertStaged way when a record is stored already (direct.go).
	insertCopy insertMode = iota
	// insertStaged COPYs the batch (binary format) into a per-connection temporary
	// staging table and moves it with one INSERT … SELECT … ON CONFLICT DO
	// NOTHING RETURNING. COPY's row format is cheaper for the server to take
	// apart than 26 array parameters of 1,000 elements each.
	insertStaged
	// insertUnnest sends the batch as one array parameter per column to a single
	// INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING.
	insertUnnest
)

// insertIntoSQL is shared by both strategies: the same columns, filled from the
// same source columns (u.*). Empty strings are stored as NULL (an absent value),
// and read back as "".
const insertIntoSQL = `
INSERT INTO audit_log (
	"timestamp", timestamp_raw, ttl, principal_id, organization_id, action,
	target_resource_type, target_resource_id, status, outcome_description, hash,
	hash_algorithm, signature, signature_algorithm, event_version, correlation_id,
	data_classification, retention_policy, processing_latency, details,
	idempotency_key, source, hash_status, signature_status, record_hash, received_at)
SELECT
	u.ts, u.ts_raw, NULLIF(u.ttl, ''), NULLIF(u.principal_id, ''), NULLIF(u.organization_id, ''), u.action,
	NULLIF(u.trt, ''), NULLIF(u.tri, ''), u.status, NULLIF(u.outcome, ''), NULLIF(u.hash, ''),
	NULLIF(u.hash_alg, ''), NULLIF(u.sig, ''), NULLIF(u.sig_alg, ''), NULLIF(u.ev, ''), NULLIF(u.corr, ''),
	NULLIF(u.class, ''), NULLIF(u.retention, ''), u.latency, u.details,
	u.key, u.source, u.hash_status, u.sig_status, u.record_hash, u.received_at`

// onConflictSQL skips rows whose key is stored and reports the rows written.
// ORDER BY ord makes the sequence hand out ids in batch order, so that Seq
// follows arrival order within a batch too.
const onConflictSQL = `
ORDER BY u.ord
ON CONFLICT (idempotency_key, "timestamp") DO NOTHING
RETURNING id, idempotency_key`

const insertUnnestSQL = insertIntoSQL + `
FROM unnest(
	$1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
	$7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
	$12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
	$17::text[], $18::text[], $19::float8[], $20::json[],
	$21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::timestamptz[]
) WITH ORDINALITY AS u(
	ts, ts_raw, ttl, principal_id, organization_id, action,
	trt, tri, status, outcome, hash,
	hash_alg, sig, sig_alg, ev, corr,
	class, retention, latency, details,
	key, source, hash_status, sig_status, record_hash, received_at, ord)` + onConflictSQL

const insertDeadLettersSQL = `
INSERT INTO audit_dead_letter (idempotency_key, source, reason, message, errors, payload, received_at)
SELECT u.key, u.source, u.reason, u.message, u.errors::jsonb, u.payload, u.received_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[])
	WITH ORDINALITY AS u(key, source, reason, message, errors, payload, received_at, ord)
ORDER BY u.ord
ON CONFLICT (idempotency_key) DO UPDATE
SET failure_count = audit_dead_letter.failure_count + 1, last_failed_at = now()`

// StoreBatch writes the batch in one transaction: all records with one COPY
// and one INSERT that skips (idempotency key, event time) pairs already stored, and all dead
// letters with one upsert that raises the count of known keys. A transaction
// that loses a deadlock against a concurrent batch with overlapping keys is run
// again (twice at most) before the error is reported as transient. A batch
// holding a record the database refuses is run again isolating that record
// (see storeIsolatingTx); batches without one never take that path.
func (s *Store) StoreBatch(ctx context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	results := make([]audit.StoreResult, len(b.Records))
	if len(b.Records) == 0 && len(b.DeadLetters) == 0 {
		return results, ctx.Err()
	}
	pos, err := positions(b)
	if err != nil {
		return nil, err
	}
	var args, dlArgs []any
	if len(b.Records) > 0 && s.insert == insertUnnest {
		args = recordArgs(b.Records)
	}
	if len(b.DeadLetters) > 0 {
		if dlArgs, err = deadLetterArgs(b.DeadLetters); err != nil {
			return nil, err
		}
	}
	direct := s.insert == insertCopy && len(b.Records) > 0 && s.directAllowed(time.Now())
	isolate := false
	for attempt := 0; ; attempt++ {
		clear(results)
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if isolate {
				return s.storeIsolatingTx(ctx, tx, b, pos, results)
			}
			return s.storeTx(ctx, tx, b, args, dlArgs, pos, results, direct)
		})
		if err == nil {
			return results, nil
		}
		if direct && errors.Is(err, errStoredAlready) {
			// Not a failure: the batch holds a redelivery. Staged, it skips it.
			s.pauseDirect(time.Now())
			direct = false
			attempt--
			continue
		}
		if _, refused := recordRefusal(err); refused && !isolate && errors.Is(err, errRecords) {
			// Not a failure of the store: one record is refused. The other
			// records must not share its fate.
			s.log.DebugContext(ctx, "store batch: a record is refused, isolating it")
			isolate = true
			attempt--
			continue
		}
		if attempt == 2 || !isRetryable(err) || ctx.Err() != nil {
			return nil, wrapErr("store batch", err)
		}
		s.log.DebugContext(ctx, "store batch: retrying after a conflict", "error", err, "attempt", attempt+1)
	}
}

// errRecords marks an error met while writing the records (rather than the
// dead letters): only there can a refused record be isolated.
var errRecords = errors.New("write records")

func (s *Store) storeTx(ctx context.Context, tx pgx.Tx, b audit.Batch, args, dlArgs []any, pos map[string]int, results []audit.StoreResult, direct bool) error {
	var rows pgx.Rows
	var err error
	switch {
	case len(b.Records) == 0:
	case direct:
		err = copyDirect(ctx, tx, b.Records, results)
	case s.insert == insertUnnest:
		rows, err = tx.Query(ctx, insertUnnestSQL, args...)
	default:
		rows, err = s.copyInsert(ctx, tx, b.Records)
	}
	if err == nil && rows != nil {
		err = collectInserted(rows, pos, results, 0, len(results))
	}
	if err != nil {
		if errors.Is(err, errStoredAlready) {
			return err
		}
		return fmt.Errorf("%w: %w", errRecords, err)
	}
	if len(dlArgs) > 0 {
		if _, err := tx.Exec(ctx, insertDeadLettersSQL, dlArgs...); err != nil {
			return err
		}
	}
	return nil
}

// collectInserted reads the RETURNING rows of an insert of the batch's records
// first to first+n-1: those it returns are stored, the others were stored
// before (duplicates).
func collectInserted(rows pgx.Rows, pos map[string]int, results []audit.StoreResult, first, n int) error {
	for i := first; i < first+n; i++ {
		results[i] = audit.StoreResult{Duplicate: true}
	}
	var id int64
	var key string
	_, err := pgx.ForEachRow(rows, []any{&id, &key}, func() error {
		i, ok := pos[key]
		if !ok {
			return fmt.Errorf("insert returned unknown key %q", key)
		}
		results[i] = audit.StoreResult{Seq: id}
		return nil
	})
	return err
}

// storeIsolatingTx is StoreBatch's way for a batch holding a record the
// database refuses. The records go in by halves, each in a savepoint: a half
// that is refused is rolled back and split again, down to the single records
// refused, so that one refused record among n costs about 2·log2(n) small
// inserts. Refused records are dead-lettered with the batch's dead letters.
func (s *Store) storeIsolatingTx(ctx context.Context, tx pgx.Tx, b audit.Batch, pos map[string]int, results []audit.StoreResult) error {
	var refused []audit.DeadLetter
	if err := insertIsolating(ctx, tx, b.Records, 0, pos, results, &refused); err != nil {
		return err
	}
	if len(refused) > 0 {
		// The reason stays in the dead letter: a database's detail can quote
		// the event's values, which logs do not carry.
		s.log.WarnContext(ctx, "store batch: records refused by the database, dead-lettered",
			"refused", len(refused), "records", len(b.Records), "first", refused[0].IdempotencyKey)
	}
	dls := b.WithDeadLetters(refused)
	if len(dls) == 0 {
		return nil
	}
	dlArgs, err := deadLetterArgs(dls)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, insertDeadLettersSQL, dlArgs...)
	return err
}

// insertIsolating inserts recs, the batch's records from first on, in a
// savepoint. When the database refuses one of them, the savepoint is rolled
// back and each half is inserted on its own; a single record refused is marked
// in results and appended to refused.
func insertIsolating(ctx context.Context, tx pgx.Tx, recs []audit.Record, first int, pos map[string]int, results []audit.StoreResult, refused *[]audit.DeadLetter) error {
	sp, err := tx.Begin(ctx) // SAVEPOINT
	if err != nil {
		return err
	}
	rows, err := sp.Query(ctx, insertUnnestSQL, recordArgs(recs)...)
	if err == nil {
		err = collectInserted(rows, pos, results, first, len(recs))
	}
	if err == nil {
		return sp.Commit(ctx) // RELEASE SAVEPOINT
	}
	reason, isRefusal := recordRefusal(err)
	if rbErr := sp.Rollback(ctx); rbErr != nil { // ROLLBACK TO SAVEPOINT
		return errors.Join(err, rbErr)
	}
	if !isRefusal {
		return err
	}
	if len(recs) == 1 {
		dl := recs[0].RefusedDeadLetter(reason)
		results[first] = audit.StoreResult{Refused: dl.Message}
		*refused = append(*refused, dl)
		return nil
	}
	half := len(recs) / 2
	if err := insertIsolating(ctx, tx, recs[:half], first, pos, results, refused); err != nil {
		return err
	}
	return insertIsolating(ctx, tx, recs[half:], first+half, pos, results, refused)
}

// positions checks what the database cannot and maps each record's key to its
// batch position, to place the RETURNING rows.
func positions(b audit.Batch) (map[string]int, error) {
	pos := make(map[string]int, len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		if r.IdempotencyKey == "" {
			return nil, invalidf("record %d has no idempotency key", i)
		}
		if r.Time.IsZero() {
			return nil, invalidf("record %s has no event time", r.IdempotencyKey)
		}
		if _, dup := pos[r.IdempotencyKey]; dup {
			return nil, invalidf("idempotency key %s appears twice in the batch", r.IdempotencyKey)
		}
		pos[r.IdempotencyKey] = i
	}
	seen := make(map[string]bool, len(b.DeadLetters))
	for i, d := range b.DeadLetters {
		if d.IdempotencyKey == "" {
			return nil, invalidf("dead letter %d has no idempotency key", i)
		}
		if seen[d.IdempotencyKey] {
			return nil, invalidf("dead-letter key %s appears twice in the batch", d.IdempotencyKey)
		}
		seen[d.IdempotencyKey] = true
	}
	return pos, nil
}

// recordArgs turns the records into one slice per column, the parameters of
// insertUnnestSQL. pgx encodes each slice as one binary array, so there is no
// per-row interface value; all strings share one backing array.
func recordArgs(recs []audit.Record) []any {
	n := len(recs)
	const nstr = 22
	backing := make([]string, nstr*n)
	col := func(i int) []string { return backing[i*n : (i+1)*n : (i+1)*n] }
	ts, received := make([]time.Time, n), make([]time.Time, n)
	latency := make([]*float64, n)
	details := make([]json.RawMessage, n)
	tsRaw, ttl, principal, org, action, trt, tri := col(0), col(1), col(2), col(3), col(4), col(5), col(6)
	status, outcome, hash, hashAlg, sig, sigAlg, ev := col(7), col(8), col(9), col(10), col(11), col(12), col(13)
	corr, class, retention, key, source, hashStatus := col(14), col(15), col(16), col(17), col(18), col(19)
	sigStatus, recordHash := col(20), col(21)
	for i := range recs {
		r := &recs[i]
		ts[i], received[i] = r.Time, r.ReceivedAt
		tsRaw[i], ttl[i], principal[i], org[i], action[i] = r.Timestamp, r.TTL, r.PrincipalID, r.OrganizationID, r.Action
		trt[i], tri[i], status[i], outcome[i] = r.TargetResourceType, r.TargetResourceID, string(r.Status), r.OutcomeDescription
		hash[i], hashAlg[i], sig[i], sigAlg[i], ev[i] = r.Hash, r.HashAlgorithm, r.Signature, r.SignatureAlgorithm, r.EventVersion
		corr[i], class[i], retention[i] = r.CorrelationID, string(r.DataClassification), r.RetentionPolicy
		key[i], source[i], hashStatus[i], sigStatus[i], recordHash[i] = r.IdempotencyKey, r.Source, r.HashStatus, r.SignatureStatus, r.RecordHash
		latency[i] = r.ProcessingLatency
		if len(r.Details) > 0 {
			details[i] = r.Details
		}
	}
	return []any{ts, tsRaw, ttl, principal, org, action, trt, tri, status, outcome, hash,
		hashAlg, sig, sigAlg, ev, corr, class, retention, latency, details,
		key, source, hashStatus, sigStatus, recordHash, received}
}

func deadLetterArgs(dls []audit.DeadLetter) ([]any, error) {
	n := len(dls)
	key, source, reason, message := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	errs := make([]*string, n)
	payload := make([][]byte, n)
	received := make([]time.Time, n)
	for i, d := range dls {
		key[i], source[i], reason[i], message[i] = cleanText(d.IdempotencyKey), cleanText(d.Source), cleanText(d.Reason), cleanText(d.Message)
		if len(d.Errors) > 0 {
			fe := make([]audit.FieldError, len(d.Errors))
			for j, e := range d.Errors {
				fe[j] = audit.FieldError{Field: cleanText(e.Field), Code: cleanText(e.Code), Message: cleanText(e.Message)}
			}
			data, err := json.Marshal(fe)
			if err != nil {
				return nil, invalidf("dead letter %s: encode errors: %v", d.IdempotencyKey, err)
			}
			s := string(data)
			errs[i] = &s
		}
		payload[i] = d.Payload
		if payload[i] == nil {
			payload[i] = []byte{}
		}
		received[i] = d.ReceivedAt
	}
	return []any{key, source, reason, message, errs, payload, received}, nil
}

// cleanText makes a dead letter's text storable in a text column, which takes
// neither NUL nor invalid UTF-8. A dead letter must never be refused: it is the
// last place a bad event is kept, and its payload (bytea) stays exact anyway.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
