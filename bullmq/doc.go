// Package bullmq speaks the BullMQ v5 Redis protocol so that Go can consume (and
// produce) jobs side by side with Node services that use the bullmq npm package
// (5.58.x): the same keys, job hash fields, scores, markers and events stream, so
// Node producers, QueueEvents listeners and bull-board keep working unchanged.
//
// It is our own implementation written from docs/bullmq-protocol.md; the
// Lua scripts in lua/ are original and share no code with BullMQ. Every state
// transition is one script call (EVALSHA with an EVAL fallback) so the conditional
// read-then-write steps are atomic, and batch forms (fetch, complete, fail, lock
// renewal) move many jobs per round trip.
//
// A Queue names the keys (prefix + ":" + name + ":" + suffix) and adds jobs; a
// Consumer fetches, locks, completes, retries, fails and recovers them. Jobs this
// package cannot honour (repeatable jobs, flows, custom backoff strategies) are
// reported by Job.Unsupported so callers can fail them with a clear reason.
//
// Behaviour follows BullMQ 5.x: while meta.paused is set, jobs put back go to the
// "paused" list (a 6.x producer would expect "wait"). Not implemented: the rate
// limiter, metrics, deduplication on add, flows and repeatable jobs. Wait needs
// Redis >= 6 (fractional BZPOPMIN timeouts).
package bullmq
