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

// ---- The production profile (internal/eventgen's Production, same table) ----
//
// Organisations 35/25/20/12/8 % with 40/30/25/20/15 users; each user has 1–3
// addresses of its own, and 10 % of the events with a session come from one of
// 4 shared NAT addresses; actions in the shares below (system events have no
// principal and no session); login failures carry a reason; data.read and
// data.export a recordCount (5 % and 20 % above the bulk threshold of 10);
// 5 % of the jobs have a priority 1–3, 0.5 % a delay of 1–5 s; timestamps are
// the time of generation minus 0–2 s. The Go e2e test TestNodeWorkloadProfile
// holds the drawn frequencies to the Go generator's table.

// mulberry32 is a small seeded PRNG: uniform floats in [0, 1).
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const families = [
  // action, resource, status, classification, HTTP method ('' = system event), per mille
  ['auth.login.success', 'User', 'success', 'INTERNAL', 'POST', 150],
  ['auth.login.failure', 'User', 'failure', 'INTERNAL', 'POST', 70],
  ['auth.logout', 'User', 'success', 'INTERNAL', 'POST', 60],
  ['fhir.patient.read', 'Patient', 'success', 'PHI', 'GET', 180],
  ['fhir.observation.read', 'Observation', 'success', 'PHI', 'GET', 100],
  ['fhir.encounter.read', 'Encounter', 'success', 'PHI', 'GET', 70],
  ['data.read', 'DocumentReference', 'success', 'CONFIDENTIAL', 'GET', 140],
  ['data.update', 'DocumentReference', 'success', 'CONFIDENTIAL', 'PUT', 60],
  ['data.create', 'DocumentReference', 'success', 'CONFIDENTIAL', 'POST', 40],
  ['data.export', 'Patient', 'success', 'PHI', 'POST', 50],
  ['user.role.changed', 'User', 'success', 'INTERNAL', 'PATCH', 20],
  ['user.created', 'User', 'success', 'INTERNAL', 'POST', 10],
  ['system.backup.completed', 'Service', 'success', 'INTERNAL', '', 25],
  ['system.config.changed', 'Service', 'success', 'INTERNAL', '', 15],
  ['system.startup', 'Service', 'success', 'INTERNAL', '', 10],
];
const loginFailureReasons = [['invalid_password', 700], ['unknown_user', 150], ['mfa_failed', 100], ['account_locked', 50]];
const organisations = [
  // id, slug, per mille, users
  ['org-riverside-health', 'riverside', 350, 40],
  ['org-lakeview-clinic', 'lakeview', 250, 30],
  ['org-northgate-hospital', 'northgate', 200, 25],
  ['org-harbor-pediatrics', 'harbor', 120, 20],
  ['org-summit-imaging', 'summit', 80, 15],
];
const natAddresses = ['203.0.113.10', '203.0.113.11', '198.51.100.7', '2001:db8:ffff::1'];
const prodAgents = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'smart-on-fhir-client/2.3.1 (+node 20)',
  'EHRDesktop/11.4 (Windows 10; build 19045)',
];
const prodDepartments = ['cardiology', 'oncology', 'radiology', 'emergency', 'pediatrics', 'general-medicine'];
const exportFormats = ['ndjson', 'csv', 'pdf'];
const systemTriggers = ['scheduler', 'deploy-pipeline', 'operator-console'];
const roles = ['clinician', 'nurse', 'front-desk', 'billing', 'admin'];

const pad = (n, w) => String(n).padStart(w, '0');
const hex = (rand, digits) => {
  let s = '';
  while (s.length < digits) s += Math.floor(rand() * 0x10000).toString(16).padStart(4, '0');
  return s.slice(0, digits);
};

// pickWeighted draws an entry of rows whose weight is at index w.
function pickWeighted(rand, rows, w) {
  const total = rows.reduce((sum, r) => sum + r[w], 0);
  let x = Math.floor(rand() * total);
  for (const r of rows) {
    if (x < r[w]) return r;
    x -= r[w];
  }
  return rows[rows.length - 1];
}

// productionGenerator returns next(), which draws {data, opts} for one job of
// the production profile; the same seed draws the same events (timestamps
// apart, which follow the clock now()).
export function productionGenerator(seed = 1, now = Date.now) {
  const rand = mulberry32(seed);
  const int = (n) => Math.floor(rand() * n);
  const users = organisations.map(([, slug, , count], oi) =>
    Array.from({ length: count }, (_, i) => ({
      id: `${slug}.u${pad(i + 1, 3)}`,
      agent: prodAgents[int(prodAgents.length)],
      site: `${slug}-site-${1 + int(3)}`,
      department: prodDepartments[int(prodDepartments.length)],
      ips: Array.from({ length: 1 + int(3) }, () => `10.${10 + oi}.${int(64)}.${1 + int(254)}`),
    })),
  );
  return function next(seq) {
    const [action, resource, status, classification, method] = pickWeighted(rand, families, 5);
    const org = pickWeighted(rand, organisations, 2);
    const [orgId, slug, , orgUsers] = org;
    const oi = organisations.indexOf(org);
    const u = users[oi][int(users[oi].length)];
    const ts = new Date(now() - int(2000));
    const data = {
      timestamp: ts.toISOString(),
      action,
      status,
      organizationId: orgId,
      targetResourceType: resource,
      eventVersion: '1.0',
      correlationId: `corr-${hex(rand, 16)}`,
      dataClassification: classification,
      retentionPolicy: 'standard',
    };
    if (method === '') {
      data.targetResourceId = 'audit-gateway';
      data.outcomeDescription = `${action} on audit-gateway`;
      data.host = `gw-${1 + int(3)}.${slug}.internal`;
      data.service = {
        name: 'audit-gateway', version: `3.${int(5)}.${int(20)}`, commit: hex(rand, 24), region: 'eu-west-1', environment: 'production',
      };
      data.triggeredBy = systemTriggers[int(systemTriggers.length)];
      if (action === 'system.backup.completed') {
        data.backup = { target: `s3://backups/${slug}`, sizeBytes: 2 ** 30 * (1 + int(40)), durationMs: 30000 + int(600000) };
      } else if (action === 'system.config.changed') {
        data.change = { key: 'retention.days', from: 2555, to: 2920, ticket: `CHG-${pad(int(100000), 5)}` };
      } else {
        data.startup = { pid: 1000 + int(60000), bootMs: 800 + int(4000) };
      }
    } else {
      let ip = u.ips[int(u.ips.length)];
      if (rand() < 0.1) ip = natAddresses[int(natAddresses.length)];
      let principal = u.id;
      data.sessionContext = { sessionId: `sess-${hex(rand, 12)}`, ipAddress: ip, userAgent: u.agent };
      data.httpMethod = method;
      data.clinic = { site: u.site, department: u.department };
      data.client = { appId: 'ehr-web', version: `11.${int(5)}.${int(30)}` };
      const id = pad(int(10_000_000), 8);
      if (resource === 'User') {
        data.targetResourceId = u.id;
        data.requestPath = '/auth/session';
      } else {
        data.targetResourceId = `${resource}-${id}`;
        data.requestPath = `/fhir/R4/${resource}/${id}`;
      }
      let outcome = `${action} on ${resource} ${data.targetResourceId}`;
      switch (action) {
        case 'auth.login.failure': {
          const [reason] = pickWeighted(rand, loginFailureReasons, 1);
          if (reason === 'unknown_user') {
            principal = `${slug}.u${pad(orgUsers + 1 + int(200), 3)}`;
            data.targetResourceId = principal;
          }
          outcome = `login failed: ${reason}`;
          data.reason = reason;
          data.attempt = 1 + int(5);
          break;
        }
        case 'auth.login.success':
          data.mfa = { method: 'totp', verified: true };
          break;
        case 'data.read':
          data.recordCount = rand() < 0.05 ? 11 + int(490) : 1 + int(10);
          data.query = `patient=${id}&_count=50&_sort=-date`;
          break;
        case 'data.export':
          data.recordCount = rand() < 0.2 ? 11 + int(50000) : 1 + int(10);
          data.format = exportFormats[int(exportFormats.length)];
          data.purpose = 'care-coordination';
          break;
        case 'user.role.changed':
          data.targetResourceId = `${slug}.u${pad(1 + int(orgUsers), 3)}`;
          data.role = { from: roles[int(roles.length)], to: roles[int(roles.length)] };
          break;
        case 'user.created':
          data.targetResourceId = `${slug}.u${pad(orgUsers + 1 + int(1000), 3)}`;
          data.role = { to: roles[int(roles.length)] };
          break;
        default:
      }
      data.principalId = principal;
      data.outcomeDescription = outcome;
    }
    data.e2eSeq = seq;
    const opts = { ...productionJobOptions };
    if (rand() < 0.05) opts.priority = 1 + int(3);
    if (rand() < 0.005) opts.delay = 1000 + int(4001);
    return { data, opts };
  };
}

// eventSource returns next(seq) -> {data, opts} for the named profile:
// "synthetic" (makeEvent, uniform, Math.random) or "production" (seeded, its
// timestamps from now()).
export function eventSource(profile = 'synthetic', seed = 1, now = Date.now) {
  if (profile === 'production') return productionGenerator(seed, now);
  if (profile === 'synthetic') return (seq) => ({ data: makeEvent(seq), opts: productionJobOptions });
  throw new Error(`--profile must be production or synthetic, not ${profile}`);
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
