import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { replaceRoot, unplainRoot } from '../../src/core/relocate.js';

const test = suite('build root relocation');
const move = (text: string) => replaceRoot(text, '/tmp/a', '/work/bb');

test('whole paths, path prefixes and flags that hold the root are rewritten', () => {
  assert.is(move('CMAKE_CACHEFILE_DIR:INTERNAL=/tmp/a/build\n'), 'CMAKE_CACHEFILE_DIR:INTERNAL=/work/bb/build\n');
  assert.is(move('cc -I/tmp/a/inc -c /tmp/a/x.c'), 'cc -I/work/bb/inc -c /work/bb/x.c');
  assert.is(move('"/tmp/a"'), '"/work/bb"');
  assert.is(move('srcdir=/tmp/a\n'), 'srcdir=/work/bb\n');
  assert.is(move('x.o: /tmp/a/x.c /usr/include/stdio.h'), 'x.o: /work/bb/x.c /usr/include/stdio.h');
});

test('longer names and paths that merely end like the root are left alone', () => {
  assert.is(move('/tmp/ab/x'), undefined);
  assert.is(move('/tmp/a.old'), undefined);
  assert.is(move('/var/tmp/a/x'), undefined);
  assert.is(move('nothing here'), undefined);
  assert.is(move('/var/tmp/a and /tmp/a/y'), '/var/tmp/a and /work/bb/y');
});

test('roots that build files would quote or escape are not relocated', () => {
  assert.is(unplainRoot('/tmp/nix-build-hello-1.0.drv-0/source'), undefined);
  assert.is(unplainRoot('/build/source'), undefined);
  assert.ok(unplainRoot('/tmp/with space'));
  assert.ok(unplainRoot('/tmp/dollar$x'));
  assert.ok(unplainRoot('/'));
});

test.run();
