import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseEvents, summarize, type CacheEvent } from '../../src/core/stats.js';

const test = suite('stats');

const restore = (cacheName: string, result: string, time: string, extra: Partial<CacheEvent> = {}): CacheEvent => ({
  v: 1, time, command: 'restore', cacheName, result, key: null, seconds: 1, files: 10, changed: 2, reused: 5, bytes: 100, ...extra,
});

test('per name: hits, fallbacks and misses make the hit rate; saves and time add up', () => {
  const events = [
    restore('a', 'hit', '2026-01-02T00:00:00Z'), restore('a', 'fallback', '2026-01-02T00:00:00Z'), restore('a', 'miss', '2026-01-02T00:00:00Z', { reused: 0, changed: 10, bytes: 0 }),
    restore('a', 'error', '2026-01-02T00:00:00Z', { reused: 0, changed: 0, bytes: 0 }),
    { v: 1, time: '2026-01-02T00:00:00Z', command: 'save', cacheName: 'a', result: 'saved', key: 'k', seconds: 2, files: 5, bytes: 50 },
    restore('b', 'hit', '2026-01-02T00:00:00Z'), restore('b', 'hit', '2025-12-01T00:00:00Z'),
  ] satisfies CacheEvent[];
  const { names, total } = summarize(events, Date.parse('2026-01-01T00:00:00Z'));
  assert.equal(names.map((s) => s.cacheName), ['a', 'b']);
  const [a, b] = names;
  assert.equal({ ...a! }, {
    cacheName: 'a', restores: 4, hits: 1, fallbacks: 1, misses: 2, hitRate: 0.5, reused: 10, changed: 14, restoredBytes: 200, saves: 1, savedBytes: 50, seconds: 6,
  });
  assert.is(b!.restores, 1, 'the event before the period is left out');
  assert.is(total.restores, 5);
  assert.is(total.hitRate, 3 / 5);
  assert.is(summarize(events, 0, 'b').total.restores, 2);
  assert.is(summarize([], 0).total.hitRate, null);
});

test('lines that are not events are counted and skipped', () => {
  const good = JSON.stringify(restore('a', 'hit', '2026-01-02T00:00:00Z'));
  const { events, bad } = parseEvents(`${good}\n{"v":2}\n{cut sh\n\n${good}\n`);
  assert.is(events.length, 2);
  assert.is(bad, 2);
});

test.run();
