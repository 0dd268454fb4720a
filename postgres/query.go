package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

// eventColumns reads a row back into a StoredEvent; NULL strings become "".
const eventColumns = `id, "timestamp", timestamp_raw, COALESCE(ttl, ''), COALESCE(principal_id, ''),
	COALESCE(organization_id, ''), action, COALESCE(target_resource_type, ''),
	COALESCE(target_resource_id, ''), status, COALESCE(outcome_description, ''), COALESCE(hash, ''),
	COALESCE(hash_algorithm, ''), COALESCE(signature, ''), COALESCE(signature_algorithm, ''),
	COALESCE(event_version, ''), COALESCE(correlation_id, ''), COALESCE(data_classification, ''),
	COALESCE(retention_policy, ''), processing_latency, details, idempotency_key, source,
	hash_status, signature_status, record_hash, received_at, ingested_at`

func scanEvent(row pgx.CollectableRow) (audit.StoredEvent, error) {
	var e audit.StoredEvent
	var status, class string
	var details []byte
	err := row.Scan(&e.Seq, &e.Time, &e.Timestamp, &e.TTL, &e.PrincipalID,
		&e.OrganizationID, &e.Action, &e.TargetResourceType,
		&e.TargetResourceID, &status, &e.OutcomeDescription, &e.Hash,
		&e.HashAlgorithm, &e.Signature, &e.SignatureAlgorithm,
		&e.EventVersion, &e.CorrelationID, &class,
		&e.RetentionPolicy, &e.ProcessingLatency, &details, &e.IdempotencyKey, &e.Source,
		&e.HashStatus, &e.SignatureStatus, &e.RecordHash, &e.ReceivedAt, &e.StoredAt)
	if err != nil {
		return e, err
	}
	e.Status, e.DataClassification = audit.Status(status), audit.Classification(class)
	if len(details) > 0 {
		e.Details = details
		e.SessionContext = audit.SessionContextOf(details)
	}
	return e, nil
}

// GetEvent returns the newest row (highest Seq) with this idempotency key.
func (s *Store) GetEvent(ctx context.Context, idempotencyKey string) (audit.StoredEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM audit_log
		WHERE idempotency_key = $1 ORDER BY id DESC LIMIT 1`, idempotencyKey)
	if err != nil {
		return audit.StoredEvent{}, wrapErr("get event", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.StoredEvent{}, audit.Errorf(audit.CodeNotFound, "get event: no event with idempotency key %q", idempotencyKey)
	}
	if err != nil {
		return audit.StoredEvent{}, wrapErr("get event", err)
	}
	return e, nil
}

// ListEvents returns up to limit events with Seq > afterSeq in Seq order; the
// primary key (id, "timestamp") makes this a merge of index scans.
func (s *Store) ListEvents(ctx context.Context, afterSeq int64, limit int) ([]audit.StoredEvent, error) {
	if limit <= 0 {
		return nil, ctx.Err()
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM audit_log
		WHERE id > $1 ORDER BY id LIMIT $2`, afterSeq, limit)
	if err != nil {
		return nil, wrapErr("list events", err)
	}
	out, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, wrapErr("list events", err)
	}
	return out, nil
}

// ListDeadLetters returns up to limit dead letters with ID > afterID in ID order.
func (s *Store) ListDeadLetters(ctx context.Context, afterID int64, limit int) ([]audit.StoredDeadLetter, error) {
	if limit <= 0 {
		return nil, ctx.Err()
	}
	rows, err := s.pool.Query(ctx, `SELECT id, idempotency_key, source, reason, message, errors, payload,
		received_at, failure_count, first_failed_at
		FROM audit_dead_letter WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, wrapErr("list dead letters", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.StoredDeadLetter, error) {
		var d audit.StoredDeadLetter
		var errs []byte
		err := row.Scan(&d.ID, &d.IdempotencyKey, &d.Source, &d.Reason, &d.Message, &errs, &d.Payload,
			&d.ReceivedAt, &d.Count, &d.StoredAt)
		if err == nil && len(errs) > 0 {
			err = json.Unmarshal(errs, &d.Errors)
		}
		return d, err
	})
	if err != nil {
		return nil, wrapErr("list dead letters", err)
	}
	return out, nil
}
