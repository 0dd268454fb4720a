// pause.mjs: pause or resume a queue the way a Node service (or bull-board) does.
//
//   node pause.mjs --prefix P --queue Q --action pause|resume
//
// Prints {"action": ..., "paused": queue.isPaused() afterwards}.
import { Queue } from 'bullmq';
import { common, required, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const action = required(args, 'action');
  const queue = new Queue(name, opts);
  try {
    if (action === 'pause') await queue.pause();
    else if (action === 'resume') await queue.resume();
    else throw new Error(`--action must be pause or resume, not ${action}`);
    return { action, paused: await queue.isPaused() };
  } finally {
    await queue.close();
  }
});
