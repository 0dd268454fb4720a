-- audit_exports keeps the manifest of every export (filters, caller, row
-- count, first and last id, SHA-256 of the bytes sent), so that any replica
-- can serve it.
CREATE TABLE audit_exports (
    id         text COLLATE "C" PRIMARY KEY,
    manifest   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- audit_secrets holds random secrets that every replica shares and nobody
-- configures: the key that signs search cursors. (Keys that must be out of
-- the database administrator's reach, like a checkpoint signing key, never
-- live here.)
CREATE TABLE audit_secrets (
    name       text COLLATE "C" PRIMARY KEY,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
