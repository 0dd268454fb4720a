#!/usr/bin/env bash
# Runs every fuzz target of the repository, one after the other, for
# FUZZ_EXECS executions each, and prints a table: target, executions, time,
# result. FuzzStoresAgree (internal/storediff, PostgreSQL) runs last. The
# exit status is non-zero when any target fails; a failing input is kept
# under the package's testdata/fuzz/FuzzX/ and runs with every `go test`.
#
#   scripts/fuzz-all.sh                          # 1,000,000 executions each
#   FUZZ_EXECS=10000 scripts/fuzz-all.sh         # a quick pass
#   FUZZ_ONLY='Cursor|Cron' scripts/fuzz-all.sh  # targets matching a regexp
#   FUZZ_TABLE=table.txt scripts/fuzz-all.sh     # also write the table there
#
# FUZZ_PARALLEL sets the fuzz workers of each target (default 1: the run
# shares the host). FUZZ_LOG_DIR keeps each target's output (default: a
# temporary directory, named at the end).
set -u
cd "$(dirname "$0")/.."

execs="${FUZZ_EXECS:-1000000}"
parallel="${FUZZ_PARALLEL:-1}"
only="${FUZZ_ONLY:-.}"
logs="${FUZZ_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/fuzz-all.XXXXXX")}"
mkdir -p "$logs"
export AUDIT_TEST_REQUIRE_SERVICES=1 # a missing PostgreSQL fails instead of skipping

# The packages with a fuzz target, then the targets `go test -list` finds in
# them (only what compiles counts), FuzzStoresAgree last.
pkgs=$(grep -rlE --include='*_test.go' --exclude-dir=node_modules '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	xargs -n1 dirname | sort -u)
if [ -z "$pkgs" ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
targets=()
last=()
for pkg in $pkgs; do
	names=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz') || {
		echo "go test -list failed in $pkg" >&2
		exit 1
	}
	for name in $names; do
		echo "$name" | grep -Eq -- "$only" || continue
		if [ "$name" = FuzzStoresAgree ]; then
			last+=("$pkg $name")
		else
			targets+=("$pkg $name")
		fi
	done
done
targets+=("${last[@]}")

table=$(mktemp)
printf '%-52s %12s %10s  %s\n' "target" "executions" "time" "result" >"$table"
failed=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	where=${pkg#./}
	[ "$pkg" = . ] && where=audit
	log="$logs/$(echo "$where" | tr / _)_$name.log"
	start=$(date +%s)
	# -timeout 0: go test's default of 10 minutes would end a long run.
	go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "${execs}x" -fuzzminimizetime 10s \
		-parallel "$parallel" -timeout 0 >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	# The last progress line holds the executions; a run too short to print
	# one has none to report.
	n=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	result=ok
	if [ $rc -ne 0 ]; then
		result="FAIL (see $log)"
		failed=1
	fi
	printf '%-52s %12s %9ss  %s\n' "$where.$name" "${n:--}" "$secs" "$result" | tee -a "$table"
done
echo
cat "$table"
echo "logs: $logs"
if [ -n "${FUZZ_TABLE:-}" ]; then
	cp "$table" "$FUZZ_TABLE"
fi
rm -f "$table"
exit $failed
