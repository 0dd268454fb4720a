// Package sqlite implements audit.EventStore on an embedded SQLite database file,
// the worker's default store: nothing to install or run besides the binary.
//
// It uses modernc.org/sqlite, a pure Go translation of SQLite, so the binary
// stays statically linked. The schema has the same logical shape as the
// PostgreSQL store (table audit_log with the original column names, table
// audit_dead_letter) and is created by numbered migrations embedded from
// migrations/*.sql, applied when the store is opened and tracked in
// PRAGMA user_version.
//
// SQLite allows one writer at a time, so the store keeps a single writer
// connection, through which every batch is written in one transaction, and a
// small pool of read-only connections for queries; in WAL mode readers never
// block the writer and the writer never blocks readers. Commits use
// synchronous=FULL, so an acknowledged batch survives power loss, not only a
// crash of the process (see Open).
//
// Instants are stored as integer microseconds since the Unix epoch (UTC), the
// precision of PostgreSQL's timestamptz; the producer's timestamp text is kept
// beside it, byte for byte, as are Details, so that a record read back hashes
// to its stored RecordHash.
package sqlite
