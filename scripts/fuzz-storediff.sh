#!/bin/sh
# Fuzzes validation against both stores (internal/storediff): every event
# audit.ParseEvent accepts must come back from PostgreSQL and SQLite exactly.
# It needs the test PostgreSQL (see internal/testenv); inputs that fail are
# kept in internal/storediff/testdata/fuzz/FuzzStoresAgree and run by every
# plain `go test` after.
#
#   scripts/fuzz-storediff.sh              # 1,000,000 executions
#   scripts/fuzz-storediff.sh 10m          # or for a while
#   PARALLEL=1 scripts/fuzz-storediff.sh   # fuzz workers (default 2)
set -eu
cd "$(dirname "$0")/.."
export AUDIT_TEST_REQUIRE_SERVICES=1 # a missing PostgreSQL fails instead of skipping
# Each execution stores and reads back through two databases, so minimising
# every new interesting input for the default 60 s would stall the run.
exec go test ./internal/storediff -run '^$' -fuzz '^FuzzStoresAgree$' \
	-fuzztime "${1:-1000000x}" -fuzzminimizetime 10s -parallel "${PARALLEL:-2}"
