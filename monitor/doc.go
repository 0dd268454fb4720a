// Package monitor raises alerts: the suspicious-pattern detectors that read a
// batch's valid events while the pipeline stores them (Monitor, a
// pipeline.EarlyObserver; never a rejected event), and the
// system monitor that checks the worker's own signals on an interval
// (SystemMonitor). Both only raise audit.AlertConditions; the audit.AlertStore
// deduplicates them and a Notifier pushes newly created alerts out.
//
// The detectors count in sliding windows of event time keyed by the events'
// idempotency keys, so an event counts once however often it is delivered and
// however many worker processes see it. The windows live behind State: in
// memory, for one process, or in memory in every replica and shared through a
// log in Redis (one MULTI per batch).
package monitor
