import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
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

test('both hashers, SIMD lanes and node:crypto, equal md5sum at every padding and buffer boundary', async () => {
  // MD5 pads to 56 mod 64 (one block or two); the SIMD hasher reads 32 KiB per lane, node:crypto 128 KiB.
  const sizes = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 121, 127, 128, 32767, 32768, 32769, 131071, 131072, 131073, 3 << 20];
  sizes.forEach((size, i) => writeFileSync(join(dir, `s${i}-${size}`), randomBytes(size)));
  const expected = gnuMd5sum(dir).toString();
  for (const hasher of ['simd', 'crypto']) {
    const cli = await runCli(['hash', dir, '--quiet'], { cwd: dir, env: hasher === 'crypto' ? { NBC_HASHER: 'crypto' } : {} });
    assert.is(cli.code, 0, cli.stderr);
    assert.is(cli.stdout, expected, hasher);
  }
});

test('on x86-64 with AVX2 the SIMD hasher is built and used; NBC_HASHER=crypto turns it off', async () => {
  writeFileSync(join(dir, 'f'), 'f');
  const avx2 = process.arch === 'x64' && /\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  const hasherOf = async (env: Record<string, string>) => {
    const json = join(dir, 'report.json');
    const cli = await runCli(['hash', dir, '--quiet', '--json', json], { cwd: '/', env });
    assert.is(cli.code, 0, cli.stderr);
    return (JSON.parse(readFileSync(json, 'utf8')) as { hasher: string }).hasher;
  };
  assert.is(await hasherOf({}), avx2 ? 'simd' : 'crypto');
  assert.is(await hasherOf({ NBC_HASHER: 'crypto' }), 'crypto');
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

test('an unreadable directory (walked as an unprivileged user) is a warning; the rest is hashed', async () => {
  writeFileSync(join(dir, 'ok.c'), 'ok');
  mkdirSync(join(dir, 'locked'));
  writeFileSync(join(dir, 'locked', 'hidden.c'), 'hidden');
  chmodSync(join(dir, 'locked'), 0o000);
  chmodSync(dir, 0o755);
  const { stdout, stderr } = await execFileAsync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups',
    process.execPath, CLI, 'hash', dir], { cwd: '/' });
  assert.is(stdout, `${createHash('md5').update('ok').digest('hex')}  ok.c\n`);
  assert.match(stderr, /warning: cannot read directory locked: EACCES: permission denied/);
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
