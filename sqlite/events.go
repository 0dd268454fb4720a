package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// insertEventSQL adds one record unless its (idempotency_key, timestamp) is
// already stored: ON CONFLICT DO NOTHING turns a redelivery into a no-op that
// changes() reports as 0 rows, which is how StoreBatch tells a duplicate from a
// new row without a second query. archived_at is left NULL.
const insertEventSQL = `INSERT INTO audit_log (
	timestamp, timestamp_raw, ttl, principal_id, organization_id, action,
	target_resource_type, target_resource_id, status, outcome_description,
	hash, hash_algorithm, event_version, correlation_id, data_classification,
	retention_policy, processing_latency, details, idempotency_key, source,
	hash_status, signature, signature_algorithm, signature_status, record_hash,
	received_at, ingested_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING`

// upsertDeadLetterSQL keeps the first refusal of a key as it was and only
// counts the later ones: the first payload is the evidence, and a producer that
// keeps sending the same bad event shows up as a high failure_count.
const upsertDeadLetterSQL = `INSERT INTO audit_dead_letter (
	idempotency_key, source, reason, message, errors, payload, received_at,
	first_failed_at, last_failed_at, failure_count
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (idempotency_key) DO UPDATE SET
	failure_count = failure_count + 1,
	last_failed_at = excluded.last_failed_at`

const eventColumns = `id, timestamp, timestamp_raw, ttl, principal_id, organization_id, action,
	target_resource_type, target_resource_id, status, outcome_description,
	hash, hash_algorithm, event_version, correlation_id, data_classification,
	retention_policy, processing_latency, details, idempotency_key, source,
	hash_status, signature, signature_algorithm, signature_status, record_hash,
	received_at, ingested_at`

// payload IS NULL tells a nil payload from an empty one, which the driver
// returns alike.
const deadLetterColumns = `id, idempotency_key, source, reason, message, errors, payload,
	payload IS NULL, received_at, first_failed_at, failure_count`

// StoreBatch writes the batch in one transaction on the writer connection. A
// record SQLite refuses (a constraint, a trigger that aborts, a value too big)
// is reported Refused and dead-lettered; the other records are stored.
func (s *Store) StoreBatch(ctx context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	if err := checkBatch(b); err != nil {
		return nil, fmt.Errorf("store batch: %w", err)
	}
	results := make([]audit.StoreResult, len(b.Records))
	if len(b.Records) == 0 && len(b.DeadLetters) == 0 {
		return results, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, classify("store batch", err)
	}
	// The writer pool has one connection, so concurrent batches queue here (for
	// as long as ctx allows) instead of fighting over SQLite's write lock; BEGIN
	// IMMEDIATE then waits up to busy_timeout for writers in other processes.
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, classify("store batch: begin", err)
	}
	defer tx.Rollback() // no-op after Commit

	// One instant for the whole batch, as PostgreSQL's now() is the
	// transaction's start time.
	now := time.Now().UnixMicro()
	ins := tx.StmtContext(ctx, s.insertEvent)
	args := make([]any, 27)
	var refused []audit.DeadLetter
	for i := range b.Records {
		// The statements run without ctx: the driver starts a watcher goroutine
		// per call for a cancellable context, which costs more than the insert.
		// ctx is checked between rows instead (and watched by the transaction,
		// which database/sql rolls back when ctx ends).
		if err := ctx.Err(); err != nil {
			return nil, classify("store batch", err)
		}
		eventArgs(args, &b.Records[i], now)
		res, err := ins.ExecContext(context.Background(), args...)
		if reason, ok := recordRefusal(err); ok {
			// SQLite backs out only the failed statement: the transaction
			// goes on with the other records.
			dl := b.Records[i].RefusedDeadLetter(reason)
			results[i] = audit.StoreResult{Refused: dl.Message}
			refused = append(refused, dl)
			continue
		}
		if err != nil {
			return nil, classify(fmt.Sprintf("store batch: record %d (key %q)", i, b.Records[i].IdempotencyKey), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, classify("store batch: rows affected", err)
		}
		if n == 0 {
			results[i] = audit.StoreResult{Duplicate: true}
			continue
		}
		if results[i].Seq, err = res.LastInsertId(); err != nil {
			return nil, classify("store batch: last insert id", err)
		}
	}

	if len(refused) > 0 {
		// The reason stays in the dead letter: a database's detail can quote
		// the event's values, which logs do not carry.
		s.log.WarnContext(ctx, "store batch: records refused by the database, dead-lettered",
			"refused", len(refused), "records", len(b.Records), "first", refused[0].IdempotencyKey)
	}
	if dls := b.WithDeadLetters(refused); len(dls) > 0 {
		up := tx.StmtContext(ctx, s.upsertDeadLetter)
		for i := range dls {
			if err := ctx.Err(); err != nil {
				return nil, classify("store batch", err)
			}
			d := &dls[i]
			errs, err := encodeFieldErrors(d.Errors)
			if err != nil {
				return nil, audit.Errorf(audit.CodeInvalid, "store batch: dead letter %d (key %q): encode errors: %w", i, d.IdempotencyKey, err)
			}
			if _, err := up.ExecContext(context.Background(),
				d.IdempotencyKey, d.Source, d.Reason, d.Message, errs, blob(d.Payload),
				micros(d.ReceivedAt), now, now); err != nil {
				return nil, classify(fmt.Sprintf("store batch: dead letter %d (key %q)", i, d.IdempotencyKey), err)
			}
		}
	}

	if err := tx.Commit(); err != nil {
		return nil, classify("store batch: commit", err)
	}
	return results, nil
}

// checkBatch refuses what no retry could store: a record or dead letter without
// an idempotency key would make redeliveries impossible to recognise.
func checkBatch(b audit.Batch) error {
	for i := range b.Records {
		if b.Records[i].IdempotencyKey == "" {
			return audit.Errorf(audit.CodeInvalid, "record %d has no idempotency key", i)
		}
	}
	for i := range b.DeadLetters {
		if b.DeadLetters[i].IdempotencyKey == "" {
			return audit.Errorf(audit.CodeInvalid, "dead letter %d has no idempotency key", i)
		}
	}
	return nil
}

// eventArgs fills args with the insert parameters of r, in insertEventSQL order.
func eventArgs(args []any, r *audit.Record, now int64) {
	var latency any
	if r.ProcessingLatency != nil {
		latency = *r.ProcessingLatency
	}
	var details any
	if r.Details != nil {
		// Bound as TEXT (not BLOB) so that SQLite's JSON functions apply to it;
		// SQLite stores text bytes as given, without checking or converting them.
		details = string(r.Details)
	}
	args[0] = r.Time.UnixMicro()
	args[1] = r.Timestamp
	args[2] = optional(r.TTL)
	args[3] = optional(r.PrincipalID)
	args[4] = optional(r.OrganizationID)
	args[5] = r.Action
	args[6] = optional(r.TargetResourceType)
	args[7] = optional(r.TargetResourceID)
	args[8] = string(r.Status)
	args[9] = optional(r.OutcomeDescription)
	args[10] = optional(r.Hash)
	args[11] = optional(r.HashAlgorithm)
	args[12] = optional(r.EventVersion)
	args[13] = optional(r.CorrelationID)
	args[14] = optional(string(r.DataClassification))
	args[15] = optional(r.RetentionPolicy)
	args[16] = latency
	args[17] = details
	args[18] = r.IdempotencyKey
	args[19] = r.Source
	args[20] = r.HashStatus
	args[21] = optional(r.Signature)
	args[22] = optional(r.SignatureAlgorithm)
	args[23] = r.SignatureStatus
	args[24] = r.RecordHash
	args[25] = micros(r.ReceivedAt)
	args[26] = now
}

// optional stores an absent (empty) field as NULL, as the original schema did.
// Go cannot tell an absent field from an empty one, so both read back as "".
func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// micros stores an instant as microseconds since the Unix epoch; the zero time
// is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// blob keeps a nil slice NULL and any other slice, even an empty one, a BLOB.
func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// fromMicros is the inverse of micros.
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func encodeFieldErrors(errs []audit.FieldError) (any, error) {
	if errs == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep messages readable in SQL: < and > as they are
	if err := enc.Encode(errs); err != nil {
		return nil, err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// GetEvent returns the most recently stored record with the key.
func (s *Store) GetEvent(ctx context.Context, idempotencyKey string) (audit.StoredEvent, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_log
		WHERE idempotency_key = ? ORDER BY id DESC LIMIT 1`, idempotencyKey)
	if err != nil {
		return audit.StoredEvent{}, classify("get event", err)
	}
	events, err := scanEvents(rows, 1)
	if err != nil {
		return audit.StoredEvent{}, classify("get event", err)
	}
	if len(events) == 0 {
		return audit.StoredEvent{}, audit.Errorf(audit.CodeNotFound, "get event: no event with idempotency key %q", idempotencyKey)
	}
	return events[0], nil
}

// ListEvents returns up to limit records with Seq > afterSeq, in Seq order.
func (s *Store) ListEvents(ctx context.Context, afterSeq int64, limit int) ([]audit.StoredEvent, error) {
	if limit < 0 {
		return nil, audit.Errorf(audit.CodeInvalid, "list events: negative limit %d", limit)
	}
	if limit == 0 {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_log
		WHERE id > ? ORDER BY id LIMIT ?`, afterSeq, limit)
	if err != nil {
		return nil, classify("list events", err)
	}
	events, err := scanEvents(rows, min(limit, 1024))
	if err != nil {
		return nil, classify("list events", err)
	}
	return events, nil
}

func scanEvents(rows *sql.Rows, capacity int) ([]audit.StoredEvent, error) {
	defer rows.Close()
	out := make([]audit.StoredEvent, 0, capacity)
	for rows.Next() {
		var (
			e                                                          audit.StoredEvent
			ts                                                         int64
			ttl, principal, org, targetType, targetID, outcome         sql.NullString
			hash, hashAlg, version, correlation, class, retention, sig sql.NullString
			sigAlg                                                     sql.NullString
			latency                                                    sql.NullFloat64
			details                                                    []byte
			received, ingested                                         sql.NullInt64
			status                                                     string
		)
		if err := rows.Scan(&e.Seq, &ts, &e.Timestamp, &ttl, &principal, &org, &e.Action,
			&targetType, &targetID, &status, &outcome,
			&hash, &hashAlg, &version, &correlation, &class,
			&retention, &latency, &details, &e.IdempotencyKey, &e.Source,
			&e.HashStatus, &sig, &sigAlg, &e.SignatureStatus, &e.RecordHash,
			&received, &ingested); err != nil {
			return nil, err
		}
		e.Time = time.UnixMicro(ts).UTC()
		e.TTL = ttl.String
		e.PrincipalID = principal.String
		e.OrganizationID = org.String
		e.TargetResourceType = targetType.String
		e.TargetResourceID = targetID.String
		e.Status = audit.Status(status)
		e.OutcomeDescription = outcome.String
		e.Hash = hash.String
		e.HashAlgorithm = hashAlg.String
		e.EventVersion = version.String
		e.CorrelationID = correlation.String
		e.DataClassification = audit.Classification(class.String)
		e.RetentionPolicy = retention.String
		if latency.Valid {
			e.ProcessingLatency = &latency.Float64
		}
		if details != nil {
			e.Details = json.RawMessage(details)
		}
		e.SessionContext = audit.SessionContextOf(details)
		e.Signature = sig.String
		e.SignatureAlgorithm = sigAlg.String
		e.ReceivedAt = fromMicros(received)
		e.StoredAt = fromMicros(ingested)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListDeadLetters returns up to limit dead letters with ID > afterID, in ID order.
func (s *Store) ListDeadLetters(ctx context.Context, afterID int64, limit int) ([]audit.StoredDeadLetter, error) {
	if limit < 0 {
		return nil, audit.Errorf(audit.CodeInvalid, "list dead letters: negative limit %d", limit)
	}
	if limit == 0 {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+deadLetterColumns+` FROM audit_dead_letter
		WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, classify("list dead letters", err)
	}
	defer rows.Close()
	out := make([]audit.StoredDeadLetter, 0, min(limit, 1024))
	for rows.Next() {
		var (
			d                 audit.StoredDeadLetter
			errs              sql.NullString
			noPayload         bool
			received, firstAt sql.NullInt64
		)
		if err := rows.Scan(&d.ID, &d.IdempotencyKey, &d.Source, &d.Reason, &d.Message,
			&errs, &d.Payload, &noPayload, &received, &firstAt, &d.Count); err != nil {
			return nil, classify("list dead letters", err)
		}
		if d.Payload == nil && !noPayload {
			d.Payload = []byte{}
		}
		if errs.Valid {
			if err := json.Unmarshal([]byte(errs.String), &d.Errors); err != nil {
				return nil, audit.Errorf(audit.CodeInvalid, "list dead letters: id %d: decode errors: %w", d.ID, err)
			}
		}
		d.ReceivedAt = fromMicros(received)
		d.StoredAt = fromMicros(firstAt)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("list dead letters", err)
	}
	return out, nil
}
