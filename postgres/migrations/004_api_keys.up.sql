-- api_keys: keys kept in the store. Only the SHA-256 of each secret is kept;
-- organizations holds organisation ids or {'*'} for all.
CREATE TABLE api_keys (
    id                   text COLLATE "C" PRIMARY KEY,
    name                 text        NOT NULL,
    role                 text        NOT NULL CHECK (role IN ('ingest', 'reader', 'auditor', 'operator', 'admin')),
    organizations        text[]      NOT NULL,
    created_by           text        NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz,
    revoked_at           timestamptz,
    last_used_at         timestamptz,
    secret_hash          bytea       NOT NULL,
    previous_secret_hash bytea,
    previous_expires_at  timestamptz
);
