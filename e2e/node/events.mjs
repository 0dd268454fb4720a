// events.mjs: draw --count jobs of a profile without Redis, for the tests that
// hold the Node generator to the table of internal/eventgen.
//
//   node events.mjs --count N [--profile production|synthetic] [--seed 1]
//
// Prints {"jobs": [{"data", "opts", "drawnMs"}, ...], "elapsedMs"}; drawnMs is
// the clock reading the generator stamped the job from, for the timestamp check.
import { eventSource, intArg, run } from './lib.mjs';

// write resolves once stdout has taken the text: run() exits right after,
// and a pipe reader would otherwise get only the first 64 KiB.
const write = (text) => new Promise((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));

run(async (args) => {
  const count = intArg(args, 'count', 1000);
  let drawnMs = 0;
  const next = eventSource(args.profile || 'production', intArg(args, 'seed', 1), () => (drawnMs = Date.now()));
  const start = performance.now();
  const jobs = [];
  for (let i = 1; i <= count; i++) {
    const job = next(i);
    jobs.push({ ...job, drawnMs });
  }
  await write(JSON.stringify({ jobs, elapsedMs: Math.round(performance.now() - start) }) + '\n');
  return undefined;
});
