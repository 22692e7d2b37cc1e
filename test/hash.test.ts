import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatManifest } from '../src/core/manifest.js';
import { hashTree } from '../src/index.js';
import { runCli, tempDir } from './helpers.js';

/** GNU md5sum over every regular file below dir, in byte order, names relative to dir. */
function gnuMd5sum(dir: string): Buffer {
  return execFileSync('sh', ['-c', "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 -r md5sum --"], { cwd: dir, maxBuffer: 1 << 28 });
}

const test = suite('tree hashing on the worker pool');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

test('odd names (space, backslash, newline, CR, non-UTF-8) give output byte-identical to md5sum', async () => {
  const names = ['plain.c', 'with space.c', 'back\\slash.h', 'new\nline.c', 'carriage\rreturn', 'ünïcode.txt'];
  for (const name of names) writeFileSync(join(dir, name), `content of ${name}`);
  mkdirSync(join(dir, 'sub dir'));
  writeFileSync(join(dir, 'sub dir', 'x'), 'x');
  // A name that is not valid UTF-8 can only be made through a Buffer path.
  writeFileSync(Buffer.from(`${dir}/raw-\xff\xfe`, 'latin1'), 'raw bytes');
  const tree = await hashTree(dir);
  assert.is(tree.digests.size, names.length + 2);
  assert.equal(formatManifest(tree.digests), gnuMd5sum(dir));
  const cli = await runCli(['hash', dir, '--quiet'], { cwd: dir });
  assert.is(cli.code, 0, cli.stderr);
  assert.is(cli.stdout, gnuMd5sum(dir).toString());
});

test('equals md5sum on every file of a 10,000-file tree, big files streamed in chunks', async () => {
  for (let d = 0; d < 20; d++) {
    const sub = join(dir, `d${d % 5}`, `e${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 500; f++) writeFileSync(join(sub, `f${f}.o`), randomBytes((f * 37) % 3000));
  }
  writeFileSync(join(dir, 'big.bin'), randomBytes(3 * (1 << 20) + 17));
  const tree = await hashTree(dir, { threads: 2 });
  assert.is(tree.digests.size, 10_001);
  assert.equal(tree.unhashable, []);
  assert.equal(formatManifest(tree.digests), gnuMd5sum(dir));
});

test('symlinks are recorded by their target and never followed', async () => {
  mkdirSync(join(dir, 'real'));
  writeFileSync(join(dir, 'real', 'f'), 'f');
  symlinkSync('/etc', join(dir, 'to-etc'));
  symlinkSync('real/f', join(dir, 'to-f'));
  symlinkSync('missing', join(dir, 'dangling'));
  const tree = await hashTree(dir);
  const md5 = (text: string) => createHash('md5').update(text).digest('hex');
  assert.equal([...tree.digests], [['dangling', md5('missing')], ['real/f', md5('f')], ['to-etc', md5('/etc')], ['to-f', md5('real/f')]]);
});

test('a fifo is reported as unhashable, never read (no hang)', async () => {
  writeFileSync(join(dir, 'a'), 'a');
  execFileSync('mkfifo', [join(dir, 'pipe')]);
  const tree = await hashTree(dir);
  assert.equal([...tree.digests.keys()], ['a']);
  assert.equal(tree.unhashable, ['pipe']);
  assert.match(tree.problems.join('\n'), /pipe: not a regular file or symlink; treated as changed/);
});

test.run();
