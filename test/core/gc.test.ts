import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { liveBytes, planGc, unusablePacks, type GcInput } from '../../src/core/gc.js';
import { markKey, packKey } from '../../src/core/key.js';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const HOUR = 3_600_000;
const GRACE = HOUR;
const P = (n: number) => packKey(String(n).padStart(16, '0'));
const pack = (n: number, hoursOld = 10, size = 10_000) => ({ key: P(n), size, modified: new Date(NOW - hoursOld * HOUR) });
const mark = (n: number, kind: 'gc' | 'repack', hoursOld: number) => ({ key: markKey(P(n), kind), modified: new Date(NOW - hoursOld * HOUR) });
const input = (over: Partial<GcInput>): GcInput => ({ packs: [], marks: [], live: new Map(), now: NOW, graceMs: GRACE, repackBelow: 0.5, ...over });

const test = suite('core/gc: mark, sweep, repack');

test('an unreferenced pack is marked first, deleted only by a later run once its mark is as old as the grace', () => {
  const first = planGc(input({ packs: [pack(1)] }));
  assert.equal(first.mark, [{ key: markKey(P(1), 'gc'), kind: 'gc' }]);
  assert.equal(first.deletePacks, []);
  assert.is(first.garbage, 10_000);
  const young = planGc(input({ packs: [pack(1)], marks: [mark(1, 'gc', 0.99)] }));
  assert.equal([young.deletePacks, young.mark, young.deleteMarks], [[], [], []], 'mark younger than the grace: wait');
  const due = planGc(input({ packs: [pack(1)], marks: [mark(1, 'gc', 1)] }));
  assert.equal(due.deletePacks.map((p) => p.key), [P(1)]);
  assert.equal(due.deleteMarks, [markKey(P(1), 'gc')]);
  // A fake now ages the marks: the same plan without waiting.
  assert.equal(planGc(input({ packs: [pack(1)], marks: [mark(1, 'gc', 0)], now: NOW + GRACE })).deletePacks.map((p) => p.key), [P(1)]);
  assert.equal(planGc(input({ packs: [pack(1)], marks: [mark(1, 'gc', 0)], graceMs: 0 })).deletePacks.map((p) => p.key), [P(1)]);
});

test('a pack younger than the grace is never marked: a save may be about to name its new pack', () => {
  assert.equal(planGc(input({ packs: [pack(1, 0.5)] })).mark, []);
});

test('a referenced pack is never deleted, loses its gc mark, however old', () => {
  const plan = planGc(input({ packs: [pack(1)], marks: [mark(1, 'gc', 100)], live: new Map([[P(1), 9_000]]) }));
  assert.equal(plan.deletePacks, []);
  assert.equal(plan.deleteMarks, [markKey(P(1), 'gc')]);
  assert.equal(plan.mark, []);
  assert.is(plan.referenced, 10_000);
});

test('repack: a referenced pack mostly garbage is marked once; unreferenced later, it is deleted after the grace', () => {
  const sparse = { packs: [pack(1)], live: new Map([[P(1), 4_000]]) };
  assert.equal(planGc(input(sparse)).mark, [{ key: markKey(P(1), 'repack'), kind: 'repack' }]);
  assert.equal(planGc(input({ ...sparse, repackBelow: 0.3 })).mark, [], 'above the threshold');
  assert.equal(planGc(input({ ...sparse, repackBelow: 0 })).mark, [], '0: never');
  assert.equal(planGc(input({ ...sparse, marks: [mark(1, 'repack', 5)] })).mark, [], 'already marked');
  assert.equal(planGc(input({ ...sparse, marks: [mark(1, 'repack', 5)] })).deleteMarks, [], 'the repack mark stays while referenced');
  const freed = planGc(input({ packs: [pack(1)], marks: [mark(1, 'repack', 5)] }));
  assert.equal(freed.deletePacks.map((p) => p.key), [P(1)]);
  assert.equal(freed.deleteMarks, [markKey(P(1), 'repack')]);
});

test('marks of packs that are gone are deleted; other keys are ignored', () => {
  const plan = planGc(input({ marks: [mark(2, 'gc', 0), { key: 'main/b1-0123456789abcdef.blobs', modified: new Date(NOW) }] }));
  assert.equal(plan.deleteMarks, [markKey(P(2), 'gc')]);
});

test('live bytes count each blob once per pack, as its tar entry', () => {
  const a = new Map([['a'.repeat(64), { pack: P(1), offset: 512, size: 1 }], ['b'.repeat(64), { pack: P(2), offset: 512, size: 600 }]]);
  const b = new Map([['a'.repeat(64), { pack: P(1), offset: 512, size: 1 }]]);
  assert.equal(liveBytes([a, b]), new Map([[P(1), 1024], [P(2), 512 + 1024]]));
});

test('a save may name only packs that are listed and unmarked', () => {
  const listed = new Set([P(1), P(2), P(3)]);
  assert.equal(unusablePacks([P(1), P(2), P(4)], listed, [markKey(P(2), 'repack'), markKey(P(3), 'gc')]), new Set([P(2), P(4)]));
});

test.run();
