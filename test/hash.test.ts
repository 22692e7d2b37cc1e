import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatManifest } from '../src/core/manifest.js';
import { hashTree, WorkerPool } from '../src/index.js';
import { CLI, execFileAsync, runCli, tempDir } from './helpers.js';

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

test('a file that vanishes between walk and hash is reported, not fatal', async () => {
  writeFileSync(join(dir, 'here'), 'here');
  const pool = new WorkerPool(1);
  try {
    const result = await pool.hash({ root: dir, files: ['here', 'gone'], symlinks: [] });
    assert.equal(result.digests, [createHash('md5').update('here').digest('hex'), null]);
    assert.match(result.errors[0]![1], /^ENOENT/);
  } finally {
    await pool.close();
  }
});

test('an unreadable file (hashed as an unprivileged user) is a warning; the rest is hashed', async () => {
  writeFileSync(join(dir, 'ok.c'), 'ok');
  writeFileSync(join(dir, 'secret.key'), 'no');
  chmodSync(join(dir, 'secret.key'), 0o000);
  chmodSync(dir, 0o755);
  const { stdout, stderr } = await execFileAsync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups',
    process.execPath, CLI, 'hash', dir], { cwd: '/' });
  assert.is(stdout, `${createHash('md5').update('ok').digest('hex')}  ok.c\n`);
  assert.match(stderr, /warning: secret\.key: cannot hash \(EACCES: permission denied.*\); treated as changed/);
  assert.match(stderr, /hash: 1 file, .* 1 unreadable/);
});

test('a unix socket and a symlink loop: reported or recorded, never a hang', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(dir, 'control.sock'), resolve));
  try {
    symlinkSync('loop-b', join(dir, 'loop-a'));
    symlinkSync('loop-a', join(dir, 'loop-b'));
    const tree = await hashTree(dir);
    assert.equal(tree.unhashable, ['control.sock']);
    assert.equal([...tree.digests.keys()], ['loop-a', 'loop-b']);
    assert.match(tree.problems.join('\n'), /control\.sock: not a regular file or symlink; treated as changed/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test.run();
