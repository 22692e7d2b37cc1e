import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, runCli, snapshot, tempDir, writeTree, CLI } from './helpers.js';

const test = suite('compression: gzip, zstd (the zstd program), none');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

const BLOB = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(1 << 20, 'x')]);

/** Restore (miss), write an artifact, save; returns the store's only archive path. */
async function saved(compression: string): Promise<{ archive: string; args: string[] }> {
  const root = join(dir, 'first');
  writeTree(root, { 'a.c': 'int a;\n' });
  const args = ['--cache-name', 'c', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--compression', compression];
  await runCli(['restore', ...args, '--state-dir', join(dir, 'state-1')], { cwd: root });
  writeTree(join(root, 'obj'), { 'blob.o': BLOB });
  const save = await runCli(['save', ...args, '--state-dir', join(dir, 'state-1')], { cwd: root });
  assert.match(save.stderr, /save: saved c/, save.stderr);
  const [name] = readdirSync(join(dir, 'store', 'c'));
  return { archive: join(dir, 'store', 'c', name!), args };
}

for (const [compression, extension] of [['gzip', '.tar.gz'], ['zstd', '.tar.zst'], ['none', '.tar']] as const) {
  test(`${compression}: round trip byte for byte, key ends in ${extension}`, async () => {
    const { archive, args } = await saved(compression);
    assert.ok(archive.endsWith(extension), archive);
    const root = join(dir, 'second');
    writeTree(root, { 'a.c': 'int a;\n' });
    const result = await runCli(['restore', ...args, '--state-dir', join(dir, 'state-2')], { cwd: root });
    assert.match(result.stderr, /restore: hit c/, result.stderr);
    assert.ok(readFileSync(join(root, 'obj', 'blob.o')).equals(BLOB));
  });
}

test('a corrupted zstd archive is refused whole', async () => {
  const { archive, args } = await saved('zstd');
  const data = readFileSync(archive);
  data.fill(0x55, data.length >> 1, (data.length >> 1) + 64);
  writeFileSync(archive, data);
  const root = join(dir, 'second');
  writeTree(root, { 'a.c': 'int a;\n' });
  const before = snapshot(root);
  const result = await runCli(['restore', ...args, '--state-dir', join(dir, 'state-2')], { cwd: root });
  assert.is(result.code, 0);
  assert.match(result.stderr, /warning: cache c is unusable, archive c\/v2-\w+\.tar\.zst: (cannot decompress the archive|damaged archive)/);
  assert.equal(snapshot(root), before);
});

test('without the zstd program, save and restore warn and the build goes on', async () => {
  const root = join(dir, 'first');
  writeTree(root, { 'a.c': 'int a;\n' });
  const args = ['--cache-name', 'c', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--compression', 'zstd', '--state-dir', join(dir, 'state')];
  const env = { PATH: '/nonexistent' };
  await runCommand(process.execPath, [CLI, 'restore', ...args], { cwd: root, env });
  writeTree(join(root, 'obj'), { 'blob.o': BLOB });
  const save = await runCommand(process.execPath, [CLI, 'save', ...args], { cwd: root, env });
  assert.is(save.code, 0);
  assert.match(save.stderr, /warning: save failed, the build goes on: .*cannot run zstd: not found on PATH \(install it, or choose --compression gzip\)/);
});

test.run();
