// Package config holds the worker's configuration: its types (in the shape of the
// original Smart Logs worker's config file, plus our own storage, http,
// validation and logging sections), defaults, validation that names the field and
// the rule it broke, and loading from a local JSON file. The S3 source and hot
// reload build on this package.
package config
