import { lstatSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from './helpers.js';

const test = suite('settle: restored times back for files rewritten with the same content');
let dir: string;
let remove: () => Promise<void>;

test.before.each(async () => {
  ({ dir, remove } = await tempDir());
});
test.after.each(() => remove());

const ARTIFACTS = { 'obj/config.h': '#define X 1\n', 'obj/Makefile': 'all:\n', 'obj/a.o': 'object' };

const settleArgs = () => ['--cache-dir', 'obj', '--state-dir', join(dir, 'state')];

/** A cache of ARTIFACTS saved from one tree, restored into a fresh one at the same root. */
async function restoredTree(): Promise<string> {
  const root = join(dir, 'src');
  const args = ['--cache-name', 's', '--store', join(dir, 'store'), ...settleArgs()];
  writeTree(root, { 'a.c': 'a' });
  assert.is((await runCli(['restore', ...args], { cwd: root })).code, 0);
  writeTree(root, ARTIFACTS, 1_700_000_000);
  assert.is((await runCli(['save', ...args], { cwd: root })).code, 0);
  rmSync(root, { recursive: true });
  writeTree(root, { 'a.c': 'a' });
  const restored = await runCli(['restore', ...args], { cwd: root });
  assert.match(restored.stderr, /restore: hit s,/);
  return root;
}

const mtimeNs = (path: string) => lstatSync(path, { bigint: true }).mtimeNs;

test('same content gets its restored time back; changed content and untouched files are left alone', async () => {
  const root = await restoredTree();
  const restoredAt = Object.fromEntries(Object.keys(ARTIFACTS).map((path) => [path, mtimeNs(join(root, path))]));
  // As configure does: one file rewritten identically, one with new content, both with a fresh time.
  writeFileSync(join(root, 'obj/config.h'), ARTIFACTS['obj/config.h']);
  writeFileSync(join(root, 'obj/Makefile'), 'all: prog\n');
  const rewrittenAt = mtimeNs(join(root, 'obj/Makefile'));
  const settled = await runCli(['settle', ...settleArgs()], { cwd: root });
  assert.is(settled.code, 0, settled.stderr);
  assert.match(settled.stderr, /settle: 1 of 2 rewritten files had the saved content and got the restored time back; 3 files restored/);
  assert.is(mtimeNs(join(root, 'obj/config.h')), restoredAt['obj/config.h']);
  assert.is(mtimeNs(join(root, 'obj/Makefile')), rewrittenAt, 'new content keeps its new time');
  assert.is(mtimeNs(join(root, 'obj/a.o')), restoredAt['obj/a.o']);
});

test('a file rewritten with the same content but a time set back by the tool is settled too; running settle twice is harmless', async () => {
  const root = await restoredTree();
  const before = mtimeNs(join(root, 'obj/a.o'));
  writeFileSync(join(root, 'obj/a.o'), ARTIFACTS['obj/a.o']);
  utimesSync(join(root, 'obj/a.o'), 5, 5);
  assert.match((await runCli(['settle', ...settleArgs()], { cwd: root })).stderr, /settle: 1 of 1 rewritten file had the saved content/);
  assert.is(mtimeNs(join(root, 'obj/a.o')), before);
  assert.match((await runCli(['settle', ...settleArgs()], { cwd: root })).stderr, /settle: 0 of 0 rewritten files had the saved content and got the restored time back; 3 files restored/);
});

test('without a restore in this build, settle says so and exits 0', async () => {
  writeTree(join(dir, 'src'), { 'a.c': 'a' });
  const result = await runCli(['settle', '--state-dir', join(dir, 'nothing-here')], { cwd: join(dir, 'src') });
  assert.is(result.code, 0);
  assert.match(result.stderr, /settle: skipped \(restore did not run in this build\)/);
});

test.run();
