-- audit_dead_letter: events refused as invalid or tampered, kept with the reason
-- and the exact payload so that nothing is lost. One row per idempotency key; a
-- repeated delivery of the same refused event only raises failure_count.
-- payload is bytea, not json or text: a refused event may be malformed JSON, not
-- UTF-8, or hold NUL bytes, and must still be kept byte for byte.
CREATE TABLE audit_dead_letter (
    id              bigserial   PRIMARY KEY,
    idempotency_key text COLLATE "C" NOT NULL UNIQUE,
    source          text        NOT NULL,
    reason          text        NOT NULL,
    message         text        NOT NULL,
    errors          jsonb,
    payload         bytea       NOT NULL,
    received_at     timestamptz NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    failure_count   integer     NOT NULL DEFAULT 1
);

CREATE INDEX audit_dead_letter_last_failed_at_idx ON audit_dead_letter (last_failed_at);
