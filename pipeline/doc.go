// Package pipeline is the reliable processor: it turns raw event payloads from any
// source into stored records. For a batch it validates each event, verifies its
// integrity, builds records and dead letters, and writes them to an
// audit.EventStore in one transaction, reporting per event: stored, duplicate or
// rejected (with the reason). Rejections are permanent; store errors are
// transient and returned as such, so the caller can retry the whole batch.
//
// The package knows no SQL and no Redis: sources (HTTP, BullMQ) call Processor
// directly with the batches they already have, or go through Batcher, which
// groups many small concurrent submissions into batches bounded in size and wait.
package pipeline
