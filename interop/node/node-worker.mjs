// node-worker.mjs: a real bullmq Worker processing jobs (e.g. ones our Go producer
// added), reporting everything it saw.
//
//   node node-worker.mjs --prefix P --queue Q --expect N [--timeout 20000]
//        [--name WORKER] [--concurrency 1] [--lock-duration MS]
//        [--stalled-interval MS] [--hang]
//
// With --hang the processor never returns (to simulate a worker killed with
// SIGKILL while it holds a job); it writes "active <id>" on stderr when it starts.
//
// The processor throws "planned failure <n>" while job.attemptsMade <
// job.data.failTimes (so a job with failTimes 2 and attempts 3 fails twice, then
// succeeds), else returns job.data.result if present, else {"ok": true, "id": id}.
// The worker stops once N jobs have finished for good, or on SIGTERM (then it
// lets the jobs in progress finish first) (completed, or failed with no
// retry left) and prints {"attempts": [{id, name, data (JSON text), opts,
// attemptsMade, timestamp, delay, priority, processedOn, startedAt}], "completed":
// [{id, returnvalue}], "failed": [{id, reason, attemptsMade}], "timedOut": bool}.
import { Worker } from 'bullmq';
import { common, intArg, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const expect = intArg(args, 'expect', 1);
  const timeoutMs = intArg(args, 'timeout', 20000);
  const attempts = [];
  const completed = [];
  const failed = [];
  let resolveAll;
  const allDone = new Promise((resolve) => (resolveAll = resolve));
  const finished = () => {
    if (completed.length + failed.length >= expect) resolveAll();
  };

  const worker = new Worker(
    name,
    async (job) => {
      attempts.push({
        id: job.id,
        name: job.name,
        data: JSON.stringify(job.data),
        opts: job.opts,
        attemptsMade: job.attemptsMade,
        timestamp: job.timestamp,
        delay: job.delay,
        priority: job.priority,
        processedOn: job.processedOn,
        startedAt: Date.now(),
      });
      if (args.hang) {
        process.stderr.write(`active ${job.id}\n`);
        await new Promise(() => {});
      }
      const failTimes = (job.data && job.data.failTimes) || 0;
      if (job.attemptsMade < failTimes) {
        throw new Error(`planned failure ${job.attemptsMade + 1}`);
      }
      if (job.data && job.data.result !== undefined) return job.data.result;
      return { ok: true, id: job.id };
    },
    {
      ...opts,
      name: args.name || 'node-interop',
      concurrency: intArg(args, 'concurrency', 1),
      drainDelay: 1,
      autorun: true,
      ...(args['lock-duration'] ? { lockDuration: intArg(args, 'lock-duration') } : {}),
      ...(args['stalled-interval'] ? { stalledInterval: intArg(args, 'stalled-interval') } : {}),
    },
  );
  worker.on('completed', (job, returnvalue) => {
    completed.push({ id: job.id, returnvalue });
    finished();
  });
  worker.on('failed', (job, err) => {
    // The worker emits "failed" for every failed attempt; count final ones only.
    if (job && job.finishedOn) {
      failed.push({ id: job.id, reason: err.message, attemptsMade: job.attemptsMade });
      finished();
    }
  });
  worker.on('error', (err) => process.stderr.write(`worker error: ${err}\n`));
  if (expect <= 0) resolveAll();
  process.on('SIGTERM', () => resolveAll());

  let timedOut = false;
  const timer = new Promise((resolve) =>
    setTimeout(() => {
      timedOut = true;
      resolve();
    }, timeoutMs),
  );
  await Promise.race([allDone, timer]);
  // A hanging processor never finishes: close without waiting for it then.
  await worker.close(Boolean(args.hang) || timedOut);
  return { attempts, completed, failed, timedOut };
}, { watchdogMs: 120000 });
