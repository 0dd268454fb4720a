// Package queueworker connects the BullMQ consumer to the pipeline: it turns a
// batch of jobs into pipeline inputs (one idempotency key per job), acknowledges
// each job by what happened to its event, writes refused events to the
// dead-letter queue in the original's payload shape, and redrives dead letters
// back to the main queue after a fix.
package queueworker
