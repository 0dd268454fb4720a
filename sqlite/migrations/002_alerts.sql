-- Alerts, as in PostgreSQL (postgres/migrations/003_alerts.up.sql). Instants
-- are INTEGER microseconds since the Unix epoch, UTC, like the audit log; tags
-- is a JSON array of strings; metadata a JSON object or NULL. id is "alt_" +
-- hex milliseconds + random hex and sorts by creation time (BINARY collation).
CREATE TABLE alerts (
    id              TEXT    PRIMARY KEY,
    organization_id TEXT    NOT NULL DEFAULT '',
    type            TEXT    NOT NULL CHECK (type IN ('SECURITY', 'SYSTEM', 'PERFORMANCE', 'COMPLIANCE')),
    severity        TEXT    NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    title           TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    source          TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL CHECK (status IN ('active', 'acknowledged', 'resolved', 'dismissed')),
    dedup_key       TEXT    NOT NULL,
    first_seen      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    occurrences     INTEGER NOT NULL CHECK (occurrences > 0),
    metadata        TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    correlation_id  TEXT    NOT NULL DEFAULT '',
    tags            TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    acknowledged_by TEXT    NOT NULL DEFAULT '',
    acknowledged_at INTEGER,
    resolved_by     TEXT    NOT NULL DEFAULT '',
    resolved_at     INTEGER,
    status_note     TEXT    NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL
) STRICT;

-- At most one open alert per condition.
CREATE UNIQUE INDEX alerts_open_dedup_key ON alerts (dedup_key) WHERE status IN ('active', 'acknowledged');

CREATE INDEX alerts_first_seen     ON alerts (first_seen DESC, id DESC);
CREATE INDEX alerts_org_first_seen ON alerts (organization_id, first_seen DESC, id DESC);
CREATE INDEX alerts_status         ON alerts (status);

-- The outcome of every notification attempt (no foreign key: delivery records
-- must not block removing old alerts).
CREATE TABLE alert_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    destination TEXT    NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 0),
    status      TEXT    NOT NULL CHECK (status IN ('delivered', 'failed', 'retrying', 'dropped')),
    http_status INTEGER,
    error       TEXT    NOT NULL DEFAULT '',
    at          INTEGER NOT NULL
) STRICT;

CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, id);
