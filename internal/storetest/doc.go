// Package storetest is the conformance suite every audit.EventStore must pass.
//
// The postgres and sqlite stores both run Run from their own tests, so that the
// two implementations cannot drift apart (the riverdrivertest pattern). The suite
// uses nothing but the audit.EventStore API; anything specific to one database
// (migrations, partitions, error mapping of its driver) is tested in that
// store's package.
//
// What the suite pins down beyond the interface comments, so that every store
// agrees:
//   - every Record field reads back exactly: strings byte for byte, Timestamp as
//     the producer's text, Time as the same instant, ProcessingLatency nil versus
//     a value (0 included), Details byte for byte, so that ComputeRecordHash and
//     the producer's ComputeHash can be recomputed from a stored row;
//   - the idempotency key of a record is the pair (IdempotencyKey, event Time):
//     the same key with another event time is a different row, and GetEvent
//     returns the newest (highest Seq) row for a key;
//   - Seq increases with batch position within a batch and from batch to batch;
//   - a dead letter whose key is stored again only has its Count raised;
//   - a batch holding a record without an IdempotencyKey is malformed: StoreBatch
//     fails with CodeInvalid and stores nothing of the batch (not even its dead
//     letters), which is how the suite checks atomicity deterministically;
//   - concurrent StoreBatch calls with overlapping keys store each key once; a
//     store may report a transient (CodeUnavailable) error for a batch that lost
//     a conflict, which the caller retries, as the pipeline does;
//   - a record the database refuses (RunRefusals: a trigger raises for it, as a
//     constraint or a data error would) fails alone: StoreBatch succeeds, the
//     record's result is Refused with the database's reason, its dead letter
//     (ReasonStoreRefused, the record's Payload) is written in the same
//     transaction, and every other record of the batch is stored or reported
//     a duplicate as usual. Installing the trigger is the one step specific to
//     a database (PostgresRefusalSQL, SQLiteRefusalSQL).
package storetest
