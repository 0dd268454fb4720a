package config

import (
	"bytes"
	_ "embed"
)

// schemaJSON is the JSON Schema (draft 2020-12) of the configuration file. It is
// embedded so that `audit-worker config schema` prints the one this binary
// enforces; docs/config.schema.json is the same file for editors and CI (a test
// keeps the two identical, and another runs both the schema and Validate over
// the same documents so they cannot drift apart).
//
//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema of the configuration file.
func Schema() []byte { return bytes.Clone(schemaJSON) }
