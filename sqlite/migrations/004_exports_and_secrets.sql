-- Export manifests and shared secrets, as in PostgreSQL
-- (postgres/migrations/005_exports_and_secrets.up.sql).
CREATE TABLE audit_exports (
    id         TEXT    PRIMARY KEY,
    manifest   TEXT    NOT NULL CHECK (json_valid(manifest)),
    created_at INTEGER NOT NULL
);

CREATE TABLE audit_secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
