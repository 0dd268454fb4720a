-- audit_report_runs: one row per scheduled report and period. The unique key
-- makes the row the lease: the replica whose insert wins runs the period;
-- another takes it over only once the lease has expired (its holder died)
-- or a failed run is due for another attempt.
CREATE TABLE audit_report_runs (
    id              bigserial   PRIMARY KEY,
    schedule        text COLLATE "C" NOT NULL,
    report_type     text        NOT NULL,
    organizations   text[]      NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    format          text        NOT NULL,
    destination     text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts        integer     NOT NULL,
    owner           text        NOT NULL,
    lease_until     timestamptz NOT NULL,
    next_attempt_at timestamptz,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    report_id       text        NOT NULL DEFAULT '',
    location        text        NOT NULL DEFAULT '',
    size_bytes      bigint,
    sha256          text        NOT NULL DEFAULT '',
    error           text        NOT NULL DEFAULT '',
    UNIQUE (schedule, period_start, period_end)
);

CREATE INDEX audit_report_runs_due ON audit_report_runs (status, next_attempt_at);
