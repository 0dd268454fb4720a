// Package eventgen makes realistic audit events for tests, benchmarks and the
// demo, optionally hashed and signed as the Node producer does. Events come
// from one of two profiles, each drawn from a seeded generator.
//
// # Synthetic (New, or NewProfile(Synthetic, seed))
//
// Uniform over 8 actions (auth.login.success, auth.login.failure,
// fhir.patient.read, fhir.observation.read, data.read, data.update,
// data.export, system.startup), 50 organisations and 20,000 principals, with
// about 300 bytes of custom details; timestamps start at Generator.Start (an
// hour ago) and advance 3 ms per event. Few principals repeat, so the
// detectors have little to count.
//
// # Production (NewProfile(Production, seed))
//
// Shaped like a real producer's traffic, so that the detectors (package
// monitor) do the work they do in production:
//
//   - timestamps: the time the event is generated (Generator.Now) minus 0–2 s
//     of jitter, so the detectors' windows count them;
//   - organisations: org-riverside-health 35 % (40 users),
//     org-lakeview-clinic 25 % (30), org-northgate-hospital 20 % (25),
//     org-harbor-pediatrics 12 % (20), org-summit-imaging 8 % (15); the user is
//     uniform within the organisation, so principals repeat;
//   - client addresses: each user has 1–3 addresses of its own; 10 % of the
//     events with a session come from one of 4 NAT addresses shared by all;
//   - login failures: the reason is in the outcome ("login failed: REASON")
//     and in details.reason: invalid_password 70 %, unknown_user 15 % (the
//     principal is then a name outside the organisation's users), mfa_failed
//     10 %, account_locked 5 %;
//   - details (every field without a column, session context included):
//     200–600 bytes, with requestPath, httpMethod, client, clinic, and per
//     action recordCount, reason, format, role, backup...; a recordCount above
//     10 makes an event bulk for the BULK_OPERATION detector;
//   - job options (Generator.Job): 95 % none, 5 % priority 1–3 (uniform);
//     0.5 % delayed by 1–5 s.
//
// The actions, their target resource type and data classification:
//
//	auth.login.success       15 %   User               INTERNAL
//	auth.login.failure        7 %   User               INTERNAL      status failure, a reason
//	auth.logout               6 %   User               INTERNAL
//	fhir.patient.read        18 %   Patient            PHI
//	fhir.observation.read    10 %   Observation        PHI
//	fhir.encounter.read       7 %   Encounter          PHI
//	data.read                14 %   DocumentReference  CONFIDENTIAL  recordCount, 5 % above 10
//	data.update               6 %   DocumentReference  CONFIDENTIAL
//	data.create               4 %   DocumentReference  CONFIDENTIAL
//	data.export               5 %   Patient            PHI           recordCount, 20 % above 10
//	user.role.changed         2 %   User               INTERNAL
//	user.created              1 %   User               INTERNAL
//	system.backup.completed 2.5 %   Service            INTERNAL      no principal, no session
//	system.config.changed   1.5 %   Service            INTERNAL      no principal, no session
//	system.startup            1 %   Service            INTERNAL      no principal, no session
//
// e2e/node/lib.mjs draws the same table for the Node producer
// (produce.mjs --profile production); the tests of both check the drawn
// frequencies against it. Whether the events fall in the detectors' off
// hours depends on the detectors' time zone, which the benchmark harness
// sets (AUDIT_E2E_BENCH_HOURS=day|night).
package eventgen
