// inspect.mjs: what Node (and so bull-board) sees of a queue.
//
//   node inspect.mjs --prefix P --queue Q [--ids 1,2] [--workers]
//
// Prints {"counts": getJobCounts(), "paused": isPaused(), "jobs": {id: null |
// {fields of getJob(id)}, "state": getState()}, "workers": getWorkers()}.
import { Queue } from 'bullmq';
import { common, listArg, run } from './lib.mjs';

function describeJob(job) {
  return {
    id: job.id,
    name: job.name,
    data: JSON.stringify(job.data),
    opts: job.opts,
    timestamp: job.timestamp,
    delay: job.delay,
    priority: job.priority,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    stalledCounter: job.stalledCounter,
    processedOn: job.processedOn ?? null,
    finishedOn: job.finishedOn ?? null,
    processedBy: job.processedBy ?? null,
    failedReason: job.failedReason ?? null,
    stacktrace: job.stacktrace ?? null,
    returnvalue: job.returnvalue === undefined ? null : job.returnvalue,
    deferredFailure: job.deferredFailure ?? null,
  };
}

run(async (args) => {
  const { queue: name, opts } = common(args);
  const queue = new Queue(name, opts);
  try {
    const result = {
      counts: await queue.getJobCounts(),
      paused: await queue.isPaused(),
      jobs: {},
    };
    for (const id of listArg(args, 'ids')) {
      const job = await queue.getJob(id);
      result.jobs[id] = job ? { ...describeJob(job), state: await job.getState() } : null;
    }
    if (args.workers) {
      result.workers = (await queue.getWorkers()).map((w) => ({ name: w.name, rawname: w.rawname }));
    }
    return result;
  } finally {
    await queue.close();
  }
});
