// cluster-produce.mjs: enqueue --count realistic audit events on a Redis
// Cluster with Queue.addBulk over an ioredis Cluster connection (the way a
// Node producer talks to a cluster), in chunks of --chunk, with the production
// job options. The queue name must carry a hash tag ({audit-events}) so that
// every key of the queue lives in one slot.
//
//   node cluster-produce.mjs --nodes HOST:PORT,HOST:PORT --prefix P --queue Q
//        --count N [--chunk 1000] [--out FILE]
//
// Writes one "id timestamp" line per job to FILE and prints {"count", "elapsedMs"}.
import IORedis from '../../interop/node_modules/ioredis/built/index.js';
import { Queue, idWriter, intArg, makeEvent, productionJobOptions, required, run } from './lib.mjs';

run(async (args) => {
  const name = required(args, 'queue');
  const prefix = required(args, 'prefix');
  const nodes = String(required(args, 'nodes')).split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });
  const count = intArg(args, 'count', 1000);
  const chunk = intArg(args, 'chunk', 1000);
  const cluster = new IORedis.Cluster(nodes);
  const out = idWriter(args.out);
  const queue = new Queue(name, { connection: cluster, prefix });
  const start = performance.now();
  let added = 0;
  try {
    while (added < count) {
      const n = Math.min(chunk, count - added);
      const specs = [];
      for (let i = 0; i < n; i++) {
        specs.push({ name: 'audit-event', data: makeEvent(added + i + 1), opts: productionJobOptions });
      }
      out.write(await queue.addBulk(specs));
      added += n;
    }
  } finally {
    await out.close();
    await queue.close();
    await cluster.quit();
  }
  return { count: added, elapsedMs: Math.round(performance.now() - start) };
}, { watchdogMs: 600000 });
