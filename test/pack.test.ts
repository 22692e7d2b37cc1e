import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileAsync, runCli, tempDir, writeTree } from './helpers.js';

const test = suite('packing on the pool thread');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

const LONG_DIR = `${'deep-directory-name-'.repeat(4)}x/${'more-nesting-'.repeat(5)}y`;
const LONG_NAME = `${'n'.repeat(120)}.o`;
const BIG = randomBytes(3 * (1 << 20) + 7);

/** Every kind of entry save may meet, with names that need PAX headers and content spanning chunks. */
function buildArtifacts(root: string): void {
  const obj = join(root, 'obj');
  mkdirSync(join(obj, LONG_DIR), { recursive: true });
  mkdirSync(join(obj, 'empty-dir'));
  writeFileSync(join(obj, 'empty.o'), '');
  writeFileSync(join(obj, 'big.bin'), BIG);
  writeFileSync(join(obj, LONG_DIR, 'deep.o'), 'deep');
  writeFileSync(join(obj, LONG_NAME), 'long name');
  writeFileSync(join(obj, 'ünïcode-ファイル.o'), 'utf-8 name');
  writeFileSync(join(obj, 'tool'), '#!/bin/sh\n');
  chmodSync(join(obj, 'tool'), 0o755);
  writeFileSync(join(obj, 'a.o'), 'shared inode');
  linkSync(join(obj, 'a.o'), join(obj, 'hard.o'));
  symlinkSync('a.o', join(obj, 'link.o'));
}

interface Seen {
  kind: string;
  mode: number;
  content?: string;
  target?: string;
}

function describe(root: string): Map<string, Seen> {
  const seen = new Map<string, Seen>();
  const visit = (path: string) => {
    for (const name of readdirSync(join(root, path))) {
      const relative = path ? `${path}/${name}` : name;
      const stat = lstatSync(join(root, relative));
      const mode = stat.mode & 0o777;
      if (stat.isDirectory()) {
        seen.set(relative, { kind: 'dir', mode });
        visit(relative);
      } else if (stat.isSymbolicLink()) seen.set(relative, { kind: 'symlink', mode: 0, target: readlinkSync(join(root, relative)) });
      else seen.set(relative, { kind: 'file', mode, content: readFileSync(join(root, relative)).toString('base64') });
    }
  };
  visit('obj');
  return seen;
}

/** A build saves what `fill` makes under obj/, then a fresh build restores it. */
async function roundTrip(name: string, fill: (root: string) => void, files: number) {
  const args = ['--cache-name', name, '--cache-dir', 'obj'];
  mkdirSync(join(dir, 'store'), { recursive: true });
  const run = (command: string, root: string) => runCli([command, ...args], {
    cwd: root, env: { NBC_STORE: join(dir, 'store'), NIX_BUILD_TOP: join(root, '..') },
  });
  const [first, second] = [join(dir, 'build-1', 'source'), join(dir, 'build-2', 'source')];
  for (const root of [first, second]) writeTree(root, { 'main.c': 'int main(void) { return 0; }\n' });
  assert.is((await run('restore', first)).code, 0);
  fill(first);
  const saved = await run('save', first);
  assert.match(saved.stderr, new RegExp(`save: saved ${name}, .*; ${files} files, `), saved.stderr);
  const restored = await run('restore', second);
  assert.match(restored.stderr, new RegExp(`restore: hit ${name}`), restored.stderr);
  return { first, second, restored: restored.stderr };
}

test('every kind of entry round-trips; GNU tar reads the archive', async () => {
  const { first, second } = await roundTrip('pack', buildArtifacts, 9);
  assert.equal(describe(second), describe(first));
  assert.is(lstatSync(join(second, 'obj', 'hard.o')).ino, lstatSync(join(second, 'obj', 'a.o')).ino, 'hard link kept');
  assert.is(lstatSync(join(second, 'obj', 'tool')).mode & 0o777, 0o755);

  const [archive] = readdirSync(join(dir, 'store', 'pack'));
  const listing = (await execFileAsync('tar', ['--zstd', '-tvf', join(dir, 'store', 'pack', archive!)])).stdout;
  for (const name of [`obj/${LONG_DIR}/deep.o`, `obj/${LONG_NAME}`, 'obj/ünïcode-ファイル.o', 'obj/link.o -> a.o', 'obj/hard.o link to obj/a.o', '.cache-meta/MD5SUMS']) {
    assert.ok(listing.includes(name), `GNU tar lists ${name}:\n${listing}`);
  }
});

test('thousands of files through the unpacking ring (wrapped several times) restore byte for byte', async () => {
  // About 30 MB in 4,000 files of 0-15 KiB: the 9 MiB ring goes round three times, with entries
  // and file contents cut at its slot boundaries.
  const sizes = randomBytes(4000 * 2);
  const { first, second, restored } = await roundTrip('ring', (root) => {
    for (let i = 0; i < 4000; i++) {
      const path = join(root, 'obj', `d${i % 7}`, `e${i % 13}`, `f${i}.o`);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, randomBytes(sizes.readUInt16LE(i * 2) % 15_000));
    }
  }, 4000);
  assert.match(restored, /4000 artifacts restored/);
  assert.equal(describe(second), describe(first));
});

test('the archive lists each file\'s MD5 (as md5sum does) and the files that mention the root', async () => {
  let root = '';
  const { first, second, restored } = await roundTrip('meta', (built) => {
    root = built;
    const obj = join(built, 'obj');
    mkdirSync(obj);
    writeFileSync(join(obj, 'depfile.d'), `x.o: ${built}/x.c\n`);
    writeFileSync(join(obj, 'plain.o'), 'no root here');
    writeFileSync(join(obj, 'big.txt'), `${'a'.repeat(3 << 20)} ${built}/b ${'b'.repeat(1000)}`);
    writeFileSync(join(obj, 'almost.o'), `${built.slice(0, -1)}#`);
  }, 4);
  const [archive] = readdirSync(join(dir, 'store', 'meta'));
  const unpacked = join(dir, 'unpacked');
  mkdirSync(unpacked);
  await execFileAsync('tar', ['--zstd', '-xf', join(dir, 'store', 'meta', archive!), '-C', unpacked]);
  const md5sum = (await execFileAsync('sh', ['-c', 'find obj -type f | LC_ALL=C sort | xargs md5sum'], { cwd: first })).stdout;
  assert.is(readFileSync(join(unpacked, '.cache-meta/ARTIFACTS'), 'utf8'), md5sum);
  const meta = JSON.parse(readFileSync(join(unpacked, '.cache-meta/meta.json'), 'utf8')) as { root: string; rooted: string[] };
  assert.is(meta.root, root);
  assert.equal(meta.rooted.sort(), ['obj/big.txt', 'obj/depfile.d']);
  // Restored under another root: exactly those two were rewritten.
  assert.is(readFileSync(join(second, 'obj/depfile.d'), 'utf8'), `x.o: ${second}/x.c\n`);
  assert.ok(readFileSync(join(second, 'obj/big.txt'), 'utf8').includes(`a ${second}/b b`));
  assert.is(readFileSync(join(second, 'obj/almost.o'), 'utf8'), `${root.slice(0, -1)}#`);
  assert.match(restored, /restore: hit meta/);
});

test.run();
