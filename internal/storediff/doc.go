// Package storediff holds the differential test of validation against the
// stores: every event audit.ParseEvent accepts must be stored by PostgreSQL
// and by SQLite and read back exactly (every field, details byte for byte,
// the same record hash), and every event it refuses must be refused with a
// *audit.ValidationError. FuzzStoresAgree checks this for its seed corpus in
// a plain `go test`; scripts/fuzz-storediff.sh runs it as a fuzzer.
//
// The package has no code of its own, only tests.
package storediff
