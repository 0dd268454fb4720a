// resume.mjs: resume a paused queue on cue, so that a drain can be timed from
// the resume without the time node takes to start.
//
//   node resume.mjs --prefix P --queue Q
//
// Connects, prints {"ready": true, "paused": queue.isPaused()}, waits for a
// line on stdin, calls queue.resume() and prints {"resumed": true, "paused"}.
import { createInterface } from 'node:readline';
import { Queue, common, print, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const queue = new Queue(name, opts);
  try {
    print({ ready: true, paused: await queue.isPaused() });
    const lines = createInterface({ input: process.stdin });
    await new Promise((resolve, reject) => {
      lines.once('line', resolve);
      lines.once('close', () => reject(new Error('stdin closed before the cue')));
    });
    lines.close();
    await queue.resume();
    return { resumed: true, paused: await queue.isPaused() };
  } finally {
    await queue.close();
  }
}, { watchdogMs: 900000 });
