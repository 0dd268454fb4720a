// stream.mjs: offer a steady stream of realistic audit events: every --tick-ms
// (default 10) it adds, with one Queue.addBulk, the jobs due by then at --rate
// events per second, for --duration-ms. A producer that falls behind catches up
// with larger chunks (at most --max-chunk, default 1000). With --deadline it
// stops at --duration-ms even when it could not add every job by then (a
// soak's length is its duration, whatever the host manages).
//
//   node stream.mjs --prefix P --queue Q --rate 5000 --duration-ms 20000 [--out FILE]
//
// Writes one "id timestamp" line per job to FILE (the timestamp is the job's,
// set by bullmq when the job is created) and prints {"count", "elapsedMs",
// "offeredRate", "maxBehind" (the largest backlog of due jobs, in jobs)}.
import { Queue, common, idWriter, intArg, makeEvent, productionJobOptions, run, sleep } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const rate = intArg(args, 'rate', 1000);
  const durationMs = intArg(args, 'duration-ms', 10000);
  const tickMs = intArg(args, 'tick-ms', 10);
  const maxChunk = intArg(args, 'max-chunk', 1000);
  const deadline = Boolean(args.deadline);
  const out = idWriter(args.out);
  const queue = new Queue(name, opts);
  await queue.waitUntilReady();
  const total = Math.round((rate * durationMs) / 1000);
  const start = performance.now();
  let sent = 0;
  let maxBehind = 0;
  try {
    // Bounded: every pass either adds jobs or sleeps one tick, and ends at total.
    while (sent < total) {
      const elapsed = performance.now() - start;
      if (deadline && elapsed >= durationMs) break;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000));
      if (due <= sent) {
        await sleep(tickMs - (elapsed % tickMs));
        continue;
      }
      maxBehind = Math.max(maxBehind, due - sent);
      const n = Math.min(maxChunk, due - sent);
      const specs = [];
      for (let i = 0; i < n; i++) {
        specs.push({ name: 'audit-event', data: makeEvent(sent + i + 1), opts: productionJobOptions });
      }
      const jobs = await queue.addBulk(specs);
      out.write(jobs);
      sent += n;
    }
  } finally {
    await out.close();
    await queue.close();
  }
  const elapsedMs = performance.now() - start;
  return { count: sent, elapsedMs: Math.round(elapsedMs), offeredRate: Math.round((sent * 1000) / elapsedMs), maxBehind };
}, { watchdogMs: 600000 });
