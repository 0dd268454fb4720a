// Package export renders stored events for people and other programs — the
// JSON the API answers with, NDJSON, CSV and a JSON array — and streams a
// search of any size from an audit.EventReader in keyset batches, in constant
// memory, while it counts the rows and hashes the bytes for the export's
// manifest.
package export
