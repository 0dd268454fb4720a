// Package e2e holds the end-to-end tests of the audit-worker binary: they build
// it once (go build ./cmd/audit-worker), run it as a subprocess with a JSON
// configuration file, its own PostgreSQL database and its own Redis key prefix,
// feed it jobs with the real bullmq npm package (scripts in node/, bullmq
// resolved from ../interop/node_modules: run `npm ci --prefix interop` first),
// and check the stored result in PostgreSQL and what is left in Redis.
//
//	go test -race ./e2e                                 # defaults, about 1.5 minutes
//	AUDIT_E2E_EVENTS=100000 go test -run TestCrashRecoveryExactlyOnce -timeout 20m ./e2e
//	AUDIT_E2E_OUTAGE_SECONDS=30 go test -run TestStoreOutage ./e2e
//	AUDIT_E2E_BENCH=1 AUDIT_E2E_BENCH_OUT=bench.md go test -run TestBenchmarkHarness -v -timeout 60m ./e2e
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
// Without PostgreSQL, Redis, node, interop/node_modules (or, for the cluster
// test, redis-server and redis-cli) the tests skip with a
// hint; with AUDIT_TEST_REQUIRE_SERVICES=1 they fail instead.
package e2e
