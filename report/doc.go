// Package report makes the compliance reports — HIPAA audit trail, GDPR
// processing activities, general compliance, integrity verification — as
// numbers an auditor can recompute by hand from the events.
//
// The definitions live here once, as Conds (conditions on one event: the
// action's verb, family or segments compared whole and ASCII
// case-insensitively, the classification, the resource type, the local
// hour in the organisation's time zone) and Dimensions. The stores turn
// them into SQL with bound parameters (Store: one statement reads the
// period's rows once and computes every aggregation of a report); Match and
// Value evaluate the same definitions in Go, and the conformance suite holds
// both stores to them. Each report prints the formula of every number it
// counts (Cond.String) and DefinitionsVersion.
//
// The integrity report is the one that reads rows: it recomputes each row's
// producer hash, signature and record hash in batches, in constant memory.
// Rendering (JSON, CSV, PDF) streams the listed events from the store.
// Scheduler makes scheduled reports: one replica per period through the
// lease rows of the runs table, retried on failure, missed periods caught
// up once.
package report
