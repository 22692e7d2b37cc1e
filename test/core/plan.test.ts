import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { changedSourceTime, planRestore, restoredMs, STORE_MTIME, type ArtifactEntry, type SourceTree } from '../../src/core/plan.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const NOW = 1_800_000_000;

function tree(digests: Record<string, string>, dirs: string[] = [], unhashable: string[] = []): SourceTree {
  return { digests: new Map(Object.entries(digests)), dirs: new Set(dirs), unhashable };
}
const file = (path: string, mtime: number): ArtifactEntry => ({ path, kind: 'file', mtime, size: 1 });
const timesOf = (plan: ReturnType<typeof planRestore>) =>
  Object.fromEntries([...plan.unchangedTimes, ...plan.changedTimes, ...plan.artifactTimes].map((t) => [t.path, t.mtime]));

const test = suite('mtime plan');

test('unchanged sources get the store mtime, changed ones the changed time, new ones a second less', () => {
  const plan = planRestore(tree({ 'a.c': A, 'b.c': B, 'new.c': A }), new Map([['a.c', A], ['b.c', A]]), [], NOW);
  assert.equal(timesOf(plan), { 'a.c': STORE_MTIME, 'b.c': NOW, 'new.c': NOW - 1 });
});

test('artifacts sit strictly between unchanged and changed sources and keep their order', () => {
  const entries = [file('obj/prog', 5000), file('obj/a.o', 4000), file('obj/b.o', 4000), file('obj/c.o', 4500)];
  const plan = planRestore(tree({ 'a.c': A }, ['obj']), new Map([['a.c', A]]), entries, NOW);
  const t = timesOf(plan);
  assert.is(t['obj/a.o'], t['obj/b.o'], 'equal archived times stay equal');
  assert.ok(STORE_MTIME < t['obj/a.o']! && t['obj/a.o']! < t['obj/c.o']! && t['obj/c.o']! < t['obj/prog']! && t['obj/prog']! < NOW);
});

test('artifacts are newer than anything outside the tree: a window of milliseconds two seconds before the changed time', () => {
  const entries = [file('obj/prog', 5000), file('obj/a.o', 4000), file('obj/c.o', 4500)];
  const t = timesOf(planRestore(tree({}), new Map(), entries, NOW));
  assert.equal([t['obj/a.o'], t['obj/c.o'], t['obj/prog']], [NOW - 2.002, NOW - 2.001, NOW - 2]);
});

test('restoredMs maps recorded times onto the window, keeping their order', () => {
  const clock = { seconds: [100, 200, 300], lastMs: 9_000_000 };
  assert.equal([50, 100, 150, 200, 299, 300, 1e9].map((s) => restoredMs(clock, s)),
    [8_999_997, 8_999_998, 8_999_998, 8_999_999, 8_999_999, 9_000_000, 9_000_000]);
});

test('a cache of hundreds of thousands of artifacts plans without overflowing the stack', () => {
  const entries = Array.from({ length: 300_000 }, (_, i) => file(`obj/f${i}.o`, 4000 + (i % 7)));
  const unhashable = Array.from({ length: 300_000 }, (_, i) => `src/u${i}.c`);
  const plan = planRestore(tree({}, ['obj'], unhashable), new Map(), entries, NOW);
  assert.is(plan.artifactTimes.length + plan.changedTimes.length, 600_000);
  assert.is(plan.diff.changed.length, 300_000);
});

test('unhashable sources count as changed', () => {
  const plan = planRestore(tree({ 'a.c': A }, [], ['fifo']), new Map([['a.c', A], ['fifo', A]]), [], NOW);
  assert.equal(plan.diff.changed, ['fifo']);
  assert.is(timesOf(plan).fifo, NOW);
});

test('never restores over a source, inside a source file, or a stale copy of a removed source', () => {
  const entries = [file('a.c', 10), file('x/inner.o', 10), file('gone.c', 10), file('src', 10), file('ok.o', 10),
    { path: 'src', kind: 'dir', mtime: 10, size: 0 } as ArtifactEntry];
  const plan = planRestore(tree({ 'a.c': A, x: B }, ['src']), new Map([['a.c', A], ['gone.c', A]]), entries, NOW);
  assert.equal(plan.restore.map((e) => e.path), ['ok.o']);
  assert.equal(plan.skipped, [
    { path: 'a.c', reason: 'is a source file now' },
    { path: 'gone.c', reason: 'was a source when the cache was made (removed since)' },
    { path: 'src', reason: 'is a source directory now' },
    { path: 'x/inner.o', reason: 'inside x, which is a source file' },
  ]);
  assert.equal(plan.diff.removed, ['gone.c']);
  assert.not.ok('gone.c' in timesOf(plan), 'a removed source gets no time');
});

test('directories are restored before their contents and get no time', () => {
  const entries = [file('obj/sub/x.o', 10), { path: 'obj', kind: 'dir', mtime: 9, size: 0 } as ArtifactEntry,
    { path: 'obj/sub', kind: 'dir', mtime: 9, size: 0 } as ArtifactEntry];
  const plan = planRestore(tree({}), new Map(), entries, NOW);
  assert.equal(plan.restore.map((e) => e.path), ['obj', 'obj/sub', 'obj/sub/x.o']);
  assert.equal(Object.keys(timesOf(plan)), ['obj/sub/x.o']);
});

test('the changed time is a whole second before now', () => {
  assert.is(changedSourceTime(1_700_000_000_999), 1_699_999_999);
});

test.run();
