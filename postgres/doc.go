// Package postgres is the audit.EventStore on PostgreSQL (pgx/v5).
//
// It owns the schema (embedded, numbered SQL migrations in migrations/, applied
// by Open or by `audit-worker migrate` under an advisory lock), the monthly
// partitions of audit_log (created ahead by EnsurePartitions and the
// MaintainPartitions loop, with a DEFAULT partition for outliers), and the
// batched, idempotent insert: a batch is one transaction, a COPY into a
// per-connection staging table and one INSERT … SELECT that skips (idempotency
// key, event time) pairs already stored, so a redelivered event never becomes a
// second row. Errors carry audit codes: data errors are CodeInvalid, everything
// else (connection, resources, shutdown, conflicts) CodeUnavailable.
package postgres
