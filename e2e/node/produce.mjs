// produce.mjs: enqueue --count realistic audit events with Queue.addBulk, in
// chunks of --chunk (default 1000), with the production job options.
//
//   node produce.mjs --prefix P --queue Q --count N [--chunk 1000] [--out FILE]
//
// Writes one "id timestamp" line per job to FILE and prints
// {"count", "elapsedMs", "firstId", "lastId"}.
import { Queue, common, idWriter, intArg, makeEvent, productionJobOptions, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const count = intArg(args, 'count', 1000);
  const chunk = intArg(args, 'chunk', 1000);
  const out = idWriter(args.out);
  const queue = new Queue(name, opts);
  const start = performance.now();
  let added = 0;
  let firstId = null;
  let lastId = null;
  try {
    while (added < count) {
      const n = Math.min(chunk, count - added);
      const specs = [];
      for (let i = 0; i < n; i++) {
        specs.push({ name: 'audit-event', data: makeEvent(added + i + 1), opts: productionJobOptions });
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
  return { count: added, elapsedMs: Math.round(performance.now() - start), firstId, lastId };
});
