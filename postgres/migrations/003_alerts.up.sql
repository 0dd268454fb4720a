-- alerts: conditions worth a human's attention (pattern detectors, system
-- thresholds), deduplicated by dedup_key while open. id is "alt_" + hex
-- milliseconds + random hex, so it sorts by creation time as text (COLLATE "C":
-- byte order, whatever the database's collation) and breaks ties of first_seen
-- in keyset pagination.
CREATE TABLE alerts (
    id              text COLLATE "C" PRIMARY KEY,
    organization_id text        NOT NULL DEFAULT '',
    type            text        NOT NULL CHECK (type IN ('SECURITY', 'SYSTEM', 'PERFORMANCE', 'COMPLIANCE')),
    severity        text        NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    title           text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    source          text        NOT NULL DEFAULT '',
    status          text        NOT NULL CHECK (status IN ('active', 'acknowledged', 'resolved', 'dismissed')),
    dedup_key       text        NOT NULL,
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    occurrences     bigint      NOT NULL CHECK (occurrences > 0),
    metadata        jsonb,
    correlation_id  text        NOT NULL DEFAULT '',
    tags            text[]      NOT NULL DEFAULT '{}',
    acknowledged_by text        NOT NULL DEFAULT '',
    acknowledged_at timestamptz,
    resolved_by     text        NOT NULL DEFAULT '',
    resolved_at     timestamptz,
    status_note     text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL
);

-- At most one open alert per condition, whichever process raises it: the
-- safety net under RaiseAlert's per-key advisory lock.
CREATE UNIQUE INDEX alerts_open_dedup_key ON alerts (dedup_key) WHERE status IN ('active', 'acknowledged');

-- Listing is newest first by (first_seen, id), optionally per organisation.
CREATE INDEX alerts_first_seen ON alerts (first_seen DESC, id DESC);
CREATE INDEX alerts_org_first_seen ON alerts (organization_id, first_seen DESC, id DESC);
CREATE INDEX alerts_status ON alerts (status);

-- alert_deliveries: the outcome of every notification attempt, so that an
-- operator can see whether (and why not) a webhook received an alert. No
-- foreign key: delivery records must not block removing old alerts.
CREATE TABLE alert_deliveries (
    id          bigserial   PRIMARY KEY,
    alert_id    text COLLATE "C" NOT NULL,
    delivery_id text        NOT NULL,
    destination text        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt >= 0),
    status      text        NOT NULL CHECK (status IN ('delivered', 'failed', 'retrying', 'dropped')),
    http_status integer,
    error       text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL
);

CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, id);
