import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCredentials } from '../../src/core/credentials.js';
import { cacheNameOf } from '../../src/core/key.js';
import { parseDuration, selectForPrune, type CacheObject } from '../../src/core/prune.js';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const DAY = 86_400_000;
const archive = (name: string, daysOld: number, n = 0): CacheObject =>
  ({ name, layout: 'archive', key: `${name}/v2-${String(n).padStart(16, '0')}.tar.gz`, size: 1, modified: new Date(NOW - daysOld * DAY) });

const prune = suite('prune selection');

prune('keys: archives name their cache; digests and temporary files are not archives', () => {
  assert.is(cacheNameOf('repo/main/v2-0123456789abcdef.tar.gz'), 'repo/main');
  assert.is(cacheNameOf('main/v2-0123456789abcdef.tar'), 'main');
  assert.is(cacheNameOf('main/v2-0123456789abcdef.tar.gz.0011223344556677.sha256'), undefined);
  assert.is(cacheNameOf('main/v2-0123456789abcdef.tar.gz.tmp-12-ab'), undefined);
});

prune('durations', () => {
  assert.is(parseDuration('90s'), 90_000);
  assert.is(parseDuration('7d'), 7 * DAY);
  assert.is(parseDuration('2w'), 14 * DAY);
  assert.is(parseDuration('7 days'), undefined);
});

prune('older-than alone, keep alone, and both (keep protects the newest)', () => {
  const objects = [archive('a', 1, 1), archive('a', 10, 2), archive('a', 20, 3), archive('b', 30, 4)];
  const keys = (list: CacheObject[]) => list.map((o) => o.key.split('/')[0] + o.key.slice(-12, -7));
  assert.equal(keys(selectForPrune(objects, { olderThanMs: 5 * DAY }, NOW)), ['a00002', 'a00003', 'b00004']);
  assert.equal(keys(selectForPrune(objects, { keep: 1 }, NOW)), ['a00002', 'a00003']);
  assert.equal(keys(selectForPrune(objects, { olderThanMs: 15 * DAY, keep: 1 }, NOW)), ['a00003']);
  assert.equal(selectForPrune(objects, {}, NOW), []);
});

prune('max-size evicts the least recently restored first (saved, if never restored), keep protects, ages add', () => {
  const used = (object: CacheObject, daysAgo: number): CacheObject => ({ ...object, lastRestored: new Date(NOW - daysAgo * DAY) });
  const objects = [used(archive('a', 30, 1), 0), archive('b', 2, 2), used(archive('c', 20, 3), 5), archive('d', 40, 4)].map((o) => ({ ...o, size: 10 }));
  const keys = (list: CacheObject[]) => list.map((o) => o.name);
  // Last used: a today, b 2 days ago (saved), c 5 days ago (restored), d 40 days ago (saved).
  assert.equal(keys(selectForPrune(objects, { maxSize: 40 }, NOW)), []);
  assert.equal(keys(selectForPrune(objects, { maxSize: 39 }, NOW)), ['d']);
  assert.equal(keys(selectForPrune(objects, { maxSize: 20 }, NOW)).sort(), ['c', 'd']);
  assert.equal(keys(selectForPrune(objects, { maxSize: 1 }, NOW)).sort(), ['a', 'b', 'c', 'd']);
  assert.equal(keys(selectForPrune(objects, { maxSize: 1, keep: 1 }, NOW)), [], 'each name has one archive, the newest');
  const two = [...objects, { ...archive('a', 50, 5), size: 10 }];
  assert.equal(keys(selectForPrune(two, { maxSize: 30, keep: 1 }, NOW)), ['a'], 'only the spare archive of a can go');
  assert.equal(keys(selectForPrune(objects, { maxSize: 30, olderThanMs: 35 * DAY }, NOW)), ['d'], 'd is old; then 30 fit');
});

prune('max-size counts a blob shared by blob-layout caches once; evicting one frees only what no other names', () => {
  const manifest = (name: string, daysOld: number, blobs: [string, number][]): CacheObject => ({
    name, layout: 'blobs', key: `${name}/b1-0123456789abcdef.blobs`, modified: new Date(NOW - daysOld * DAY),
    blobs: new Map(blobs), size: 1 + blobs.reduce((sum, [, n]) => sum + n, 0),
  });
  // a and b share a 100-byte blob; each has 10 of its own; c has 50 alone. The store holds 3 + 100 + 10 + 10 + 50.
  const objects = [manifest('a', 3, [['s', 100], ['a', 10]]), manifest('b', 2, [['s', 100], ['b', 10]]), manifest('c', 1, [['c', 50]])];
  const names = (list: CacheObject[]) => list.map((o) => o.name);
  assert.equal(names(selectForPrune(objects, { maxSize: 173 }, NOW)), []);
  assert.equal(names(selectForPrune(objects, { maxSize: 172 }, NOW)), ['a'], 'a frees 11 bytes: 162 fit');
  assert.equal(names(selectForPrune(objects, { maxSize: 161 }, NOW)).sort(), ['a', 'b'], 'then b frees the shared blob too');
});

prune.run();

const credentials = suite('credentials files');

credentials('AWS shared-credentials format, default and named profiles', () => {
  const text = '[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = s1\n\n[profile ci]\naws_access_key_id=AKICI\naws_secret_access_key=s2\naws_session_token=t\n';
  assert.equal(parseCredentials(text), { accessKeyId: 'AKIDEFAULT', secretAccessKey: 's1' });
  assert.equal(parseCredentials(text, 'ci'), { accessKeyId: 'AKICI', secretAccessKey: 's2', sessionToken: 't' });
});

credentials('a plain two-line file', () => {
  assert.equal(parseCredentials('AKIPLAIN\nsecret-value\n'), { accessKeyId: 'AKIPLAIN', secretAccessKey: 'secret-value' });
});

credentials('problems never quote the file', () => {
  const result = parseCredentials('[default]\naws_access_key_id = AKI\n');
  assert.equal(result, { problem: 'profile default lacks aws_access_key_id or aws_secret_access_key' });
  const plain = parseCredentials('only-one-line-SECRET\n');
  assert.ok('problem' in plain && !plain.problem.includes('SECRET'));
});

credentials.run();
