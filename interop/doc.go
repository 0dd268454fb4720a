// Package interop holds the interoperability tests of package bullmq against the
// real bullmq npm package (pinned to 5.58.5 in package.json / package-lock.json):
// Node producers, QueueEvents listeners, Queue getters (what bull-board shows),
// pause/resume and a Node Worker, each run as a small script from node/, against
// our Go Queue and Consumer on the same Redis.
//
// The package has no non-test code. Its tests need Node, Redis and the npm
// packages: install them with
//
//	npm ci --prefix interop --no-audit --no-fund
//
// Without node or interop/node_modules the tests skip (fail when
// AUDIT_TEST_REQUIRE_SERVICES=1, as in CI). Each subtest uses its own key prefix
// (BullMQ's prefix option) and deletes its keys when it ends.
package interop
