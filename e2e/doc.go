// Package e2e holds the end-to-end tests of the audit-worker binary: they build
// it once (go build ./cmd/audit-worker), run it as a subprocess with a JSON
// configuration file, its own PostgreSQL database and its own Redis key prefix,
// feed it jobs with the real bullmq npm package (scripts in node/, bullmq
// resolved from ../interop/node_modules: run `npm ci --prefix interop` first),
// and check the stored result in PostgreSQL and what is left in Redis.
//
//	go test -race ./e2e                                 # defaults, a few minutes
//	AUDIT_E2E_EVENTS=100000 go test -run TestCrashRecoveryExactlyOnce -timeout 20m ./e2e
//	AUDIT_E2E_OUTAGE_SECONDS=30 go test -run TestStoreOutage ./e2e
//	AUDIT_E2E_FAULT_EVENTS=20000 AUDIT_E2E_FAULT_SECONDS=10 AUDIT_E2E_FAULT_TABLE=faults.md go test -run TestNetworkFaults -v -timeout 30m ./e2e
//	AUDIT_E2E_BENCH=1 AUDIT_E2E_BENCH_OUT=bench.md go test -run TestBenchmarkHarness -v -timeout 60m ./e2e
//	AUDIT_E2E_SOAK=1 AUDIT_E2E_SOAK_MINUTES=3 go test -run TestSoak -v -timeout 30m ./e2e
//	scripts/soak.sh                                     # the 30-minute soak, with plots
//	AUDIT_E2E_MANY_EVENTS=200000 go test -run 'TestManyWorkers' -parallel 1 -v -timeout 60m ./e2e
//	AUDIT_E2E_CLUSTER_EVENTS=100000 go test -run TestClusterFailover -v -timeout 30m ./e2e
//	AUDIT_E2E_MANY_SCALING=1 AUDIT_E2E_MANY_EVENTS=200000 go test -run TestManyWorkersScaling -v -timeout 60m ./e2e
//
// TestCrashRecoveryExactlyOnce SIGKILLs the worker three times while it
// processes AUDIT_E2E_EVENTS events (default 10000) and checks that every job
// was stored exactly once and nothing is left in Redis. The worker uses
// BullMQ's default lock duration and stalled interval (30 s each), so jobs held
// by a killed worker come back after 30 to 60 s: the test takes over a minute.
// AUDIT_E2E_LOCK_MS=5000 sets reliableProcessor.lockDurationMs and
// stalledIntervalMs to 5 s (about 10 s per recovery instead).
//
// TestDoubleStall kills the worker twice while it holds the same jobs (store cut
// off meanwhile, 5 s lock and stalled intervals) and checks that those events,
// which BullMQ would fail as "stalled more than allowable limit", are stored.
//
// The proxies between the worker and its services are internal/faultproxy's:
// they add latency, stall chunks as lost TCP segments do, cut connections
// (also in the middle of a command) and blackhole a server, at run time.
//
// TestNetworkFaults runs one worker with Redis and PostgreSQL each behind
// such a proxy and injects, one case after the other and for each of the two:
// 50 ms and 500 ms of latency each way, 1 % loss, every connection cut after
// 512 more bytes, and a blackhole. During each fault a Node producer, connected
// to Redis directly, adds AUDIT_E2E_FAULT_EVENTS events (default 2000) over
// AUDIT_E2E_FAULT_SECONDS (default 3). The test checks that every event is
// stored exactly once, that no job is left waiting or active and none is
// dead-lettered, that /readyz reports a blackholed service down and never
// blames the other one, that the circuit breaker opens when PostgreSQL
// connections are cut and never for a Redis fault, and that the backlog is
// drained and the health endpoints are green again within a bound after the
// fault ends (the recovery time it logs). AUDIT_E2E_FAULT_TABLE=FILE writes
// the results table to FILE; AUDIT_E2E_FAULT_CASES=TEXT runs only the cases
// whose name contains TEXT. A PostgreSQL blackhole held longer than two store
// timeouts (AUDIT_E2E_FAULT_SECONDS over 65) must open the breaker too. About
// a minute and a half with the defaults.
//
// TestStoreOutage puts a TCP proxy between the worker and PostgreSQL and cuts
// it for AUDIT_E2E_OUTAGE_SECONDS (default 5) while events keep coming; the
// circuit breaker must open and close again and nothing may be lost. With
// AUDIT_E2E_STOP_POSTGRES=1 it stops the real server instead (pg_ctlcluster
// stop/start, run as a user allowed to do so). That mode disturbs every other
// user of the server: run it alone (go test -run TestStoreOutage ./e2e, never
// with ./... or other test processes using the same server).
//
// TestManyWorkersOneQueue runs three worker processes and one Node bullmq
// Worker (node/node-consumer.mjs, which records the jobs it takes instead of
// storing them) on one queue while AUDIT_E2E_MANY_EVENTS events (default
// 10000) are added, then sends five failed logins of one principal and three
// invalid events to the Go workers one at a time. The rows and the Node
// worker's jobs must cover every event exactly once, each Go worker must store
// at least 20 % of the events (from its /metrics), the detectors must evaluate
// each stored event once and raise one FAILED_AUTH alert, and each invalid
// event must be dead-lettered once. TestManyWorkersKillOne SIGKILLs one of
// three workers on a full queue (AUDIT_E2E_LOCK_MS, default 5000 there): its
// jobs come back as stalled to the other two and are stored once.
// TestManyWorkersScaling (AUDIT_E2E_MANY_SCALING=1) reports the drain rate with
// 1, 2 and 3 workers and the share of a core Redis uses, on a redis-server of
// its own.
//
// TestClusterFailover starts a Redis Cluster of six local redis-server
// processes (three masters, one replica each; redis-server and redis-cli must
// be installed), adds AUDIT_E2E_CLUSTER_EVENTS events (default 5000) to the
// hash-tagged queue {audit-events} over an ioredis Cluster connection
// (node/cluster-produce.mjs), waits until the queue's replica has caught up,
// and SIGKILLs the queue's master while the worker drains. The worker is not
// restarted: every event must be stored exactly once, nothing may be left in
// wait or active, and rows must grow again within 30 s of the kill.
//
// TestBenchmarkHarness runs only with AUDIT_E2E_BENCH=1: it measures how fast
// the worker drains a pre-filled queue (events/s, peak RSS, Redis commands per
// event), the same for a Node bullmq Worker with an empty processor, and the
// end-to-end latency under a steady offered load. See bench_test.go for its
// environment variables.
//
// TestSQLiteFullDisk runs the worker on the embedded SQLite store on a 16 MiB
// tmpfs (it mounts one: run as root), fills the disk while events arrive over
// HTTP and from the queue, and checks the answers (503 saying the disk is
// full, never 500 or a hang), readiness (503 while full), the file (PRAGMA
// integrity_check, every acknowledged or queued event once, no refused one)
// and the recovery once the filler is deleted. Without the right to mount it
// skips, or fails with AUDIT_TEST_REQUIRE_SERVICES=1. About 15 s.
//
// TestSoak runs only with AUDIT_E2E_SOAK=1: 5,000 events/s
// (AUDIT_E2E_SOAK_RATE) for AUDIT_E2E_SOAK_MINUTES (default 30) with the
// detectors on; every 10 s it samples the worker's RSS, goroutines and open
// files, Redis used_memory and the p99 end-to-end latency into a CSV
// (AUDIT_E2E_SOAK_CSV), and fails when one of them grows over the second half
// (internal/soakstat) or an event is lost or doubled. scripts/soak.sh runs it
// on a private Redis and draws docs/images/soak-*.png with scripts/soakplot.
//
// Without PostgreSQL, Redis, node, interop/node_modules (or, for the cluster
// test, redis-server and redis-cli) the tests skip with a
// hint; with AUDIT_TEST_REQUIRE_SERVICES=1 they fail instead.
package e2e
