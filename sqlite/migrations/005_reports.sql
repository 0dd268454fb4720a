-- Scheduled report runs, as in PostgreSQL (postgres/migrations/006_reports.up.sql):
-- the unique row of a schedule and period is its lease. Instants are INTEGER
-- microseconds since the Unix epoch, UTC; organizations is a JSON array.
CREATE TABLE audit_report_runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule        TEXT    NOT NULL,
    report_type     TEXT    NOT NULL,
    organizations   TEXT    NOT NULL CHECK (json_valid(organizations)),
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    format          TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL,
    owner           TEXT    NOT NULL,
    lease_until     INTEGER NOT NULL,
    next_attempt_at INTEGER,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    report_id       TEXT    NOT NULL DEFAULT '',
    location        TEXT    NOT NULL DEFAULT '',
    size_bytes      INTEGER,
    sha256          TEXT    NOT NULL DEFAULT '',
    error           TEXT    NOT NULL DEFAULT '',
    UNIQUE (schedule, period_start, period_end)
) STRICT;

CREATE INDEX audit_report_runs_due ON audit_report_runs (status, next_attempt_at);
