// drain.mjs: a real bullmq Worker with an EMPTY processor (async job => {})
// drains --expect jobs: the reference for what BullMQ itself costs per job.
//
//   node drain.mjs --prefix P --queue Q --expect N [--concurrency 50] [--timeout 300000] [--report-ready]
//
// With --report-ready it first prints {"ready": true} when the Worker emits
// 'ready' (its blocking connection is up), so that a paused queue can be
// resumed once the worker waits for jobs.
// Prints, as soon as N jobs have finished (completed or failed) or the timeout
// passed, {"completed", "failed", "elapsedMs" (from the Worker's creation),
// "sinceProcessStartMs", "timedOut", "maxRssKiB"}, then closes the worker and exits.
import { Worker, common, intArg, print, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const expect = intArg(args, 'expect', 1);
  const timeoutMs = intArg(args, 'timeout', 300000);
  let completed = 0;
  let failed = 0;
  let resolveAll;
  const allDone = new Promise((resolve) => (resolveAll = resolve));
  const start = performance.now();
  const worker = new Worker(name, async () => {}, {
    ...opts,
    name: 'e2e-node-drain',
    concurrency: intArg(args, 'concurrency', 50),
    autorun: true,
  });
  worker.on('completed', () => {
    if (++completed + failed >= expect) resolveAll();
  });
  worker.on('failed', () => {
    if (completed + ++failed >= expect) resolveAll();
  });
  worker.on('error', (err) => process.stderr.write(`worker error: ${err}\n`));
  if (args['report-ready']) worker.once('ready', () => print({ ready: true }));
  let timedOut = false;
  let timer;
  await Promise.race([
    allDone,
    new Promise((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  const now = performance.now();
  print({
    completed,
    failed,
    elapsedMs: Math.round(now - start),
    sinceProcessStartMs: Math.round(now),
    timedOut,
    maxRssKiB: process.resourceUsage().maxRSS,
  });
  await worker.close(true);
  return undefined;
}, { watchdogMs: 900000 });
