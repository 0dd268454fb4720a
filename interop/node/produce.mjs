// produce.mjs: add jobs with Queue.add (one call per job) or Queue.addBulk.
//
//   node produce.mjs --prefix P --queue Q --jobs '[{"name":..,"data":..,"opts":..}]' [--bulk]
//   node produce.mjs --prefix P --queue Q --count N --name NAME --opts '{...}' [--bulk]
//
// With --count, job i (1-based) gets data {"seq": i}. Prints
// {"ids": [...], "jobs": [{"id", "name", "data" (JSON text as sent), "opts", "timestamp"}]}.
import { Queue } from 'bullmq';
import { common, intArg, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  let specs;
  if (args.jobs !== undefined) {
    specs = JSON.parse(args.jobs);
  } else {
    const count = intArg(args, 'count', 1);
    const jobOpts = args.opts ? JSON.parse(args.opts) : {};
    specs = [];
    for (let i = 1; i <= count; i++) {
      specs.push({ name: args.name || name, data: { seq: i }, opts: jobOpts });
    }
  }
  const queue = new Queue(name, opts);
  try {
    let jobs;
    if (args.bulk) {
      jobs = await queue.addBulk(specs.map((s) => ({ name: s.name, data: s.data, opts: s.opts })));
    } else {
      jobs = [];
      for (const s of specs) jobs.push(await queue.add(s.name, s.data, s.opts));
    }
    return {
      ids: jobs.map((j) => j.id),
      jobs: jobs.map((j) => ({
        id: j.id,
        name: j.name,
        data: JSON.stringify(j.data),
        opts: j.opts,
        timestamp: j.timestamp,
      })),
    };
  } finally {
    await queue.close();
  }
});
