// produce.mjs: enqueue --count audit events with Queue.addBulk, in chunks of
// --chunk (default 1000), with the production job options.
//
//   node produce.mjs --prefix P --queue Q --count N [--chunk 1000] [--out FILE]
//                    [--profile synthetic|production] [--seed 1] [--pause]
//
// --profile picks the events (lib.mjs): "synthetic" (the default: uniform
// over 8 actions, 50 organisations, 20,000 principals) or "production" (the
// production-shaped table, seeded by --seed, with its priorities and delays).
// --pause pauses the queue (queue.pause()) before adding, so the jobs wait in
// "paused" until someone resumes it.
//
// Writes one "id timestamp" line per job to FILE and prints
// {"count", "elapsedMs", "firstId", "lastId", "paused"}.
import { Queue, common, eventSource, idWriter, intArg, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const count = intArg(args, 'count', 1000);
  const chunk = intArg(args, 'chunk', 1000);
  const next = eventSource(args.profile || 'synthetic', intArg(args, 'seed', 1));
  const out = idWriter(args.out);
  const queue = new Queue(name, opts);
  const start = performance.now();
  let added = 0;
  let firstId = null;
  let lastId = null;
  let paused = false;
  try {
    if (args.pause) {
      await queue.pause();
      paused = await queue.isPaused();
    }
    while (added < count) {
      const n = Math.min(chunk, count - added);
      const specs = [];
      for (let i = 0; i < n; i++) {
        const { data, opts: jobOpts } = next(added + i + 1);
        specs.push({ name: 'audit-event', data, opts: jobOpts });
      }
      const jobs = await queue.addBulk(specs);
      out.write(jobs);
      if (firstId === null) firstId = jobs[0].id;
      lastId = jobs[jobs.length - 1].id;
      added += n;
    }
  } finally {
    await out.close();
    await queue.close();
  }
  return { count: added, elapsedMs: Math.round(performance.now() - start), firstId, lastId, paused };
});
