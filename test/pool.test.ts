import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand } from './helpers.js';

const POOL = new URL('../src/pool.js', import.meta.url).href;

const test = suite('worker pool');

// Node 20 aborts the whole process when a thread is terminated inside the require() that loads
// its module; a command that ends while a second thread is still starting did that (before the
// pool waited for its threads, 2 of 6 runs of this test aborted). Closing right after the first
// answer, with no timers, catches the sibling thread mid-start. In a child process, so that an
// abort fails this test instead of ending the test run.
test('closing while a thread is still starting ends cleanly, 100 times', async () => {
  const script = `
    import { WorkerPool } from ${JSON.stringify(POOL)};
    for (let i = 0; i < 100; i++) {
      const pool = new WorkerPool(2);
      await pool.setTimes({ root: '/', paths: [], mtimes: [] });
      await pool.close();
    }
    console.log('closed 100 pools');`;
  const child = await runCommand(process.execPath, ['--input-type=module', '-e', script]);
  assert.is(child.stderr, '');
  assert.is(child.code, 0);
  assert.is(child.stdout, 'closed 100 pools\n');
});

test.run();
