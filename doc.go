// Package audit is the domain of the audit worker: the audit event as producers
// send it, the rules that decide whether it is acceptable, the producer-compatible
// integrity hash and signature, the record that gets stored, and the contracts
// (such as EventStore) that the technology packages implement.
//
// This package imports only the standard library. Packages named after a
// technology (postgres, sqlite, bullmq, httpapi) implement or use these
// contracts and never import each other; cmd/audit-worker wires them together.
package audit
