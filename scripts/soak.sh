#!/bin/sh
# Soak: the worker on PostgreSQL and Redis with the pattern detectors on, a
# Node producer offering 5,000 events/s for AUDIT_E2E_SOAK_MINUTES (default
# 50: Redis holds the detectors' log of the last 35 minutes and is judged
# after them). e2e.TestSoak samples the worker every 10 s into a CSV and fails
# on growth or on a lost or doubled event; soakplot then draws one PNG per
# metric into docs/images/soak-*.png and prints the verdict. Then runs
# scripts/fuzz-all.sh (every fuzz target, 10^6 executions each: hours) unless
# SOAK_FUZZ=0.
#
#   scripts/soak.sh                              # 50 minutes
#   AUDIT_E2E_SOAK_MINUTES=3 SOAK_FUZZ=0 scripts/soak.sh   # a short check (Redis not judged)
#   AUDIT_E2E_SOAK_RATE=2000 SOAK_OUT=/tmp/soak scripts/soak.sh
#
# Redis memory is only meaningful on a Redis no one else uses: when
# redis-server is installed and AUDIT_TEST_REDIS_URL is not set, the script
# starts a private one on SOAK_REDIS_PORT (default 6391) and stops it at exit.
# It needs the test PostgreSQL (internal/testenv), node and
# interop/node_modules (npm ci --prefix interop).
set -eu
cd "$(dirname "$0")/.."
minutes=${AUDIT_E2E_SOAK_MINUTES:-50}
out=${SOAK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")}
images=${SOAK_IMAGES:-docs/images}
mkdir -p "$out"
csv="$out/soak.csv"

redis_pid=
cleanup() {
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT INT TERM
if [ -z "${AUDIT_TEST_REDIS_URL:-}" ] && command -v redis-server >/dev/null 2>&1; then
	port=${SOAK_REDIS_PORT:-6391}
	if redis-cli -p "$port" ping >/dev/null 2>&1; then
		echo "soak: port $port already serves a Redis: set SOAK_REDIS_PORT to a free port" >&2
		exit 1
	fi
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$out" --logfile "$out/redis.log" &
	redis_pid=$!
	i=0
	until redis-cli -p "$port" ping >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 50 ] || { echo "soak: redis-server on port $port did not start" >&2; exit 1; }
		kill -0 "$redis_pid" 2>/dev/null || { echo "soak: redis-server on port $port exited, see $out/redis.log" >&2; exit 1; }
		sleep 0.1
	done
	export AUDIT_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
	echo "soak: private Redis at $AUDIT_TEST_REDIS_URL"
fi

echo "soak: $minutes min at ${AUDIT_E2E_SOAK_RATE:-5000} events/s, samples in $csv"
status=0
AUDIT_E2E_SOAK=1 AUDIT_E2E_SOAK_MINUTES=$minutes AUDIT_E2E_SOAK_CSV=$csv AUDIT_TEST_REQUIRE_SERVICES=1 \
	go test ./e2e -run '^TestSoak$' -count=1 -v -timeout "$((minutes + 20))m" >"$out/test.log" 2>&1 || status=$?
grep -E '^\s+(soak_test|harness_test)\.go' "$out/test.log" | tail -n 40 || true
grep -E '^(--- |ok|FAIL)' "$out/test.log" || true

plot=0
go run ./scripts/soakplot -csv "$csv" -out "$images" || plot=$?
[ "$status" -ne 0 ] || status=$plot

if [ "${SOAK_FUZZ:-1}" != 0 ] && [ -x scripts/fuzz-all.sh ]; then
	echo "soak: scripts/fuzz-all.sh"
	scripts/fuzz-all.sh || status=$?
fi
echo "soak: test log $out/test.log, exit status $status"
exit "$status"
