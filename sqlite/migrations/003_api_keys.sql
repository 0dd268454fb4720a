-- API keys: only the SHA-256 of each secret is kept. organizations is a JSON
-- array of organisation ids, or ["*"]. Instants are INTEGER microseconds since
-- the Unix epoch, UTC, as in the other tables.
CREATE TABLE api_keys (
    id                   TEXT    PRIMARY KEY,
    name                 TEXT    NOT NULL,
    role                 TEXT    NOT NULL CHECK (role IN ('ingest', 'reader', 'auditor', 'operator', 'admin')),
    organizations        TEXT    NOT NULL CHECK (json_valid(organizations)),
    created_by           TEXT    NOT NULL DEFAULT '',
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER,
    revoked_at           INTEGER,
    last_used_at         INTEGER,
    secret_hash          BLOB    NOT NULL,
    previous_secret_hash BLOB,
    previous_expires_at  INTEGER
);
