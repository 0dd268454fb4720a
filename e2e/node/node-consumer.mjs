// node-consumer.mjs: a real bullmq Worker that shares the queue with the Go
// workers. Its processor stores nothing: it records the job it was given, so
// that the test can count the jobs Node took apart from the rows the Go
// workers stored.
//
//   node node-consumer.mjs --prefix P --queue Q --out FILE [--concurrency 1]
//
// Writes "ready" on stderr once the worker is connected. On SIGTERM it closes
// the worker (letting the jobs in progress finish), appends one "id timestamp"
// line per job it completed to FILE and prints {"completed", "failed"}.
import { writeFileSync } from 'node:fs';
import { Worker, common, intArg, required, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const out = required(args, 'out');
  const lines = [];
  let failed = 0;
  let resolveStop;
  const stop = new Promise((resolve) => (resolveStop = resolve));
  process.on('SIGTERM', () => resolveStop());

  const worker = new Worker(name, async (job) => ({ takenBy: 'node', id: job.id }), {
    ...opts,
    name: 'e2e-node-consumer',
    concurrency: intArg(args, 'concurrency', 1),
    autorun: true,
  });
  // Only completed jobs count: a job whose completion did not reach Redis is
  // still there for another worker.
  worker.on('completed', (job) => lines.push(`${job.id} ${job.timestamp}\n`));
  worker.on('failed', () => failed++);
  worker.on('error', (err) => process.stderr.write(`worker error: ${err}\n`));
  await worker.waitUntilReady();
  process.stderr.write('ready\n');

  await stop;
  await worker.close();
  writeFileSync(out, lines.join(''));
  return { completed: lines.length, failed };
}, { watchdogMs: 1800000 });
