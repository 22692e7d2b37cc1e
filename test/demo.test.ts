// The README's demo is a newcomer's first command: it must show a warm build that compiles exactly
// the edited file.
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand } from './helpers.js';

const test = suite('npm run demo');
const DEMO = fileURLToPath(new URL('../bench/demo.js', import.meta.url));

test('cold, then warm with one file changed: the warm build compiles exactly that file, without a warning', async () => {
  const demo = await runCommand(process.execPath, [DEMO], { cwd: process.cwd() });
  assert.is(demo.code, 0, demo.stdout + demo.stderr);
  assert.match(demo.stdout, /^warm build with unit007\.c changed: [\d.]+ s, compiled: unit007\.c$/m);
  assert.match(demo.stdout, /restore: hit demo, key demo\//);
  assert.not.match(demo.stdout + demo.stderr, /warning/);
});

test.run();
