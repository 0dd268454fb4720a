// Shared helpers of the e2e Node scripts: bullmq (resolved from the interop
// package's node_modules, installed with `npm ci --prefix interop`), argument
// parsing, the Redis connection taken from a redis:// URL, realistic audit
// events, the production job options, and a watchdog.
//
// Every script takes --redis URL (default $AUDIT_TEST_REDIS_URL or
// redis://127.0.0.1:6379/0), --prefix P (BullMQ's key prefix) and --queue NAME,
// prints exactly one JSON line on stdout and exits 0; on error it prints the
// error on stderr and exits 1.
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';

// The package has no "exports" map: its "main" (the CommonJS build) is what a
// bare 'bullmq' import loads, so load that same file by its path.
export { Queue, Worker } from '../../interop/node_modules/bullmq/dist/cjs/index.js';

// The job options the production producer uses.
export const productionJobOptions = { removeOnComplete: 100, removeOnFail: false, attempts: 1 };

// Argument parsing and the Redis connection are the interop scripts' helpers.
import { parseArgs, required, intArg, connection, common, print, run as runInterop, sleep } from '../../interop/node/lib.mjs';
export { parseArgs, required, intArg, connection, common };

const actions = [
  ['auth.login.success', 'User', 'success'],
  ['auth.login.failure', 'User', 'failure'],
  ['fhir.patient.read', 'Patient', 'success'],
  ['fhir.observation.read', 'Observation', 'success'],
  ['data.read', 'DocumentReference', 'success'],
  ['data.update', 'Encounter', 'success'],
  ['data.export', 'Patient', 'attempt'],
  ['system.startup', 'Service', 'success'],
];
const departments = ['cardiology', 'oncology', 'radiology', 'emergency', 'pediatrics'];
const agents = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'smart-on-fhir-client/2.3.1 (+node 20)',
];

function rnd(n) {
  return Math.floor(Math.random() * n);
}

function ip() {
  if (Math.random() < 0.2) {
    return `2001:db8:${rnd(65536).toString(16)}::${(1 + rnd(65534)).toString(16)}`;
  }
  return `10.${rnd(256)}.${rnd(256)}.${1 + rnd(254)}`;
}

// makeEvent returns a valid audit event as the Node producer builds it (no hash):
// the original fields, a session context and ~300 bytes of custom fields.
export function makeEvent(seq) {
  const [action, resource, status] = actions[rnd(actions.length)];
  const resourceId = `${resource}-${String(rnd(1_000_000)).padStart(8, '0')}`;
  return {
    timestamp: new Date().toISOString(),
    action,
    status,
    principalId: `user-${String(rnd(20000)).padStart(5, '0')}`,
    organizationId: `org-${String(rnd(50)).padStart(3, '0')}`,
    targetResourceType: resource,
    targetResourceId: resourceId,
    outcomeDescription: `${action} on ${resource} ${resourceId} finished with status ${status}`,
    sessionContext: {
      sessionId: `sess-${randomBytes(8).toString('hex')}`,
      ipAddress: ip(),
      userAgent: agents[rnd(agents.length)],
    },
    dataClassification: resource === 'Patient' || resource === 'Observation' ? 'PHI' : 'INTERNAL',
    correlationId: randomUUID(),
    // Custom fields (stored in details), about 300 bytes.
    requestPath: `/fhir/R4/${resource}/${rnd(1_000_000)}`,
    httpMethod: action.endsWith('.read') ? 'GET' : 'POST',
    clinic: { site: `site-${String(rnd(20)).padStart(2, '0')}`, department: departments[rnd(departments.length)] },
    client: { appId: `app-${rnd(100)}`, version: `4.${rnd(10)}.${rnd(30)}`, scopes: ['patient/*.read', 'openid', 'fhirUser'] },
    e2eSeq: seq,
    note: 'synthetic event produced by the audit-worker end-to-end tests',
  };
}

// idWriter appends "id timestamp" lines to a file (or nowhere without a path).
export function idWriter(path) {
  if (!path || path === true) return { write() {}, close: async () => {} };
  const out = createWriteStream(path);
  return {
    write(jobs) {
      let s = '';
      for (const j of jobs) s += `${j.id} ${j.timestamp}\n`;
      out.write(s);
    },
    close: () => new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve()))),
  };
}

// Output, the watchdog and sleep are the interop scripts' helpers too; the
// e2e scripts pass a longer watchdog (they move 100,000 jobs).
export { print, sleep };

export function run(main, { watchdogMs = 60000 } = {}) {
  return runInterop(main, { watchdogMs });
}
