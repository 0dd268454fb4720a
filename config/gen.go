package config

// docs/configuration.md is rendered from schema.json; a test in
// internal/gendoc fails when the two disagree.
//go:generate go run ./internal/gendoc -o ../docs/configuration.md
