// observe.mjs: listen with QueueEvents and collect the events of some jobs.
//
//   node observe.mjs --prefix P --queue Q --ids 1,2,3 [--events completed,failed,stalled]
//        [--until completed,failed] [--timeout 10000] [--linger 300] [--from-start]
//
// It collects every event named in --events (default: completed, failed, stalled,
// retries-exhausted, delayed, waiting, active) for the given ids, until each id has
// had one of the --until events (default completed, failed), then keeps listening
// --linger ms to catch duplicates. With --from-start it replays the events stream
// from its first entry (lastEventId 0-0), so it may start after the events
// happened. Prints {"ready": true, "events": [{"event", "jobId", ...fields}],
// "timedOut": bool}. Once QueueEvents is connected it writes "ready" on stderr.
import { QueueEvents } from 'bullmq';
import { common, intArg, listArg, run, sleep } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const ids = new Set(listArg(args, 'ids'));
  const names = args.events
    ? listArg(args, 'events')
    : ['completed', 'failed', 'stalled', 'retries-exhausted', 'delayed', 'waiting', 'active'];
  const until = new Set(args.until ? listArg(args, 'until') : ['completed', 'failed']);
  const timeoutMs = intArg(args, 'timeout', 10000);
  const lingerMs = intArg(args, 'linger', 300);

  const qeOpts = { ...opts, blockingTimeout: 200 };
  if (args['from-start']) qeOpts.lastEventId = '0-0';
  const qe = new QueueEvents(name, qeOpts);
  const events = [];
  const done = new Set();
  let resolveAll;
  const allDone = new Promise((resolve) => (resolveAll = resolve));
  for (const ev of new Set([...names, ...until])) {
    qe.on(ev, (fields) => {
      if (!ids.has(String(fields.jobId))) return;
      if (names.includes(ev)) events.push({ event: ev, ...fields });
      if (until.has(ev)) {
        done.add(String(fields.jobId));
        if (done.size === ids.size) resolveAll();
      }
    });
  }
  if (ids.size === 0) resolveAll();
  await qe.waitUntilReady();
  process.stderr.write('ready\n');
  let timedOut = false;
  const timer = new Promise((resolve) =>
    setTimeout(() => {
      timedOut = true;
      resolve();
    }, timeoutMs),
  );
  await Promise.race([allDone, timer]);
  if (!timedOut) await sleep(lingerMs);
  await qe.close();
  return { events, timedOut, missing: [...ids].filter((id) => !done.has(id)) };
}, { watchdogMs: 60000 });
