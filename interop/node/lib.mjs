// Shared helpers of the interop scripts: argument parsing, the Redis connection
// options taken from a redis:// URL, JSON output and a hard timeout.
//
// Every script takes --redis URL (default $AUDIT_TEST_REDIS_URL or
// redis://127.0.0.1:6379/0), --prefix P (BullMQ's key prefix) and --queue NAME,
// prints exactly one JSON document on stdout and exits 0; on error it prints the
// error on stderr and exits 1.

// parseArgs turns "--key value" pairs (and bare "--flag") into an object.
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const key = a.slice(2);
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out[key] = argv[++i];
    } else {
      out[key] = true;
    }
  }
  return out;
}

export function required(args, key) {
  const v = args[key];
  if (v === undefined || v === true || v === '') throw new Error(`missing --${key}`);
  return v;
}

export function intArg(args, key, dflt) {
  const v = args[key];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${key}: not a number: ${v}`);
  return n;
}

export function listArg(args, key) {
  const v = args[key];
  if (v === undefined || v === true || v === '') return [];
  return String(v).split(',');
}

// connection converts a redis:// URL into the options bullmq hands to ioredis.
export function connection(args) {
  const raw = args.redis || process.env.AUDIT_TEST_REDIS_URL || 'redis://127.0.0.1:6379/0';
  const u = new URL(raw);
  const opts = {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
  };
  const db = u.pathname.replace(/^\//, '');
  if (db) opts.db = Number(db);
  if (u.username) opts.username = decodeURIComponent(u.username);
  if (u.password) opts.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') opts.tls = {};
  return opts;
}

// common returns the queue name and the options shared by Queue, Worker and
// QueueEvents.
export function common(args) {
  return {
    queue: required(args, 'queue'),
    opts: { connection: connection(args), prefix: required(args, 'prefix') },
  };
}

export function print(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

// run executes main, prints its result (if any) and exits; a watchdog ends a
// stuck script. --watchdog-ms overrides the default.
export function run(main, { watchdogMs = 30000 } = {}) {
  const args = parseArgs();
  if (args['watchdog-ms'] !== undefined) watchdogMs = intArg(args, 'watchdog-ms');
  const timer = setTimeout(() => {
    process.stderr.write(`watchdog: script still running after ${watchdogMs} ms\n`);
    process.exit(2);
  }, watchdogMs);
  timer.unref();
  main(args)
    .then((result) => {
      if (result !== undefined) print(result);
      process.exit(0);
    })
    .catch((err) => {
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
