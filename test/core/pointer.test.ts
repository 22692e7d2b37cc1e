import { suite } from 'uvu';
import { cacheNameOf } from '../../src/core/key.js';
import * as assert from 'uvu/assert';
import {
  archiveObjectKey, besideOf, besidePrefix, collectable, formatPointer, logicalListing, ORPHAN_AGE_MS, parsePointer, POINTER_SIZE,
} from '../../src/core/pointer.js';

const test = suite('core/pointer: the S3 layout of pointers and archive objects');
const KEY = 'repo/main/v2-0123456789abcdef.tar.zst';
const SHA = 'a'.repeat(64);
const at = (ms: number) => new Date(ms);

test('pointers have one size and parse back; anything else is not a pointer', () => {
  const short = formatPointer({ object: '0011223344556677', sha256: SHA, bytes: 1 });
  const long = formatPointer({ object: '0011223344556677', sha256: SHA, bytes: 123_456_789_012 });
  assert.is(short.length, POINTER_SIZE);
  assert.is(long.length, POINTER_SIZE);
  assert.equal(parsePointer(long.toString()), { object: '0011223344556677', sha256: SHA, bytes: 123_456_789_012 });
  for (const text of ['', ' ', '{', 'null', '[]', long.toString().slice(0, 40),
    JSON.stringify({ format: 2, object: '0011223344556677', sha256: SHA, bytes: 1 }),
    JSON.stringify({ format: 1, object: '../../etc/passwd', sha256: SHA, bytes: 1 }),
    JSON.stringify({ format: 1, object: '0011223344556677', sha256: 'x', bytes: 1 }),
    JSON.stringify({ format: 1, object: '0011223344556677', sha256: SHA, bytes: -1 })]) {
    assert.is(parsePointer(text), undefined, text);
  }
});

test('keys beside a cache key: archive objects and digests of the format before', () => {
  assert.is(archiveObjectKey(KEY, '0011223344556677'), 'repo/main/v2-0123456789abcdef.0011223344556677.tar.zst');
  assert.is(archiveObjectKey('a/b.tar', '0011223344556677'), 'a/b.0011223344556677.tar');
  assert.ok(archiveObjectKey(KEY, '0011223344556677').startsWith(besidePrefix(KEY)));
  assert.ok(`${KEY}.0011223344556677.sha256`.startsWith(besidePrefix(KEY)));
  assert.equal(besideOf(archiveObjectKey(KEY, '0011223344556677')), { base: KEY, nonce: '0011223344556677', legacyDigest: false });
  assert.equal(besideOf(`${KEY}.0011223344556677.sha256`), { base: KEY, nonce: '0011223344556677', legacyDigest: true });
  assert.is(besideOf(KEY), undefined);
  assert.is(besideOf(`${KEY}.tmp-12-ab`), undefined);
  assert.is(besideOf('main/v2-0123456789abcdef.tar.gz'), undefined, 'a cache key is not beside another');
  // ls and prune know caches by cacheNameOf: an archive object is never taken for one.
  assert.is(cacheNameOf(archiveObjectKey(KEY, '0011223344556677')), undefined);
  assert.is(cacheNameOf(KEY), 'repo/main');
});

test('the listing shows each cache key once, sized as its newest archive', () => {
  const raw = [
    { key: KEY, size: POINTER_SIZE, modified: at(3000) },
    { key: archiveObjectKey(KEY, '1111111111111111'), size: 100, modified: at(1000) },
    { key: archiveObjectKey(KEY, '2222222222222222'), size: 200, modified: at(2000) },
    { key: `${KEY}.1111111111111111.sha256`, size: 80, modified: at(1000) },
    { key: 'other/v2-0123456789abcdef.tar.gz', size: 50, modified: at(10) },
  ];
  assert.equal(logicalListing(raw), [{ key: KEY, size: 200, modified: at(3000) }, raw[4]]);
});

test('after a save: the previous archive and old digests go; young racers stay, old orphans go', () => {
  const now = 10 * ORPHAN_AGE_MS;
  const beside = [
    { key: archiveObjectKey(KEY, 'cccccccccccccccc'), size: 1, modified: at(now) },
    { key: archiveObjectKey(KEY, 'pppppppppppppppp'.replace(/p/g, 'a')), size: 1, modified: at(now - 5) },
    { key: archiveObjectKey(KEY, 'bbbbbbbbbbbbbbbb'), size: 1, modified: at(now - 1000) },
    { key: archiveObjectKey(KEY, 'dddddddddddddddd'), size: 1, modified: at(now - ORPHAN_AGE_MS - 1) },
    { key: `${KEY}.eeeeeeeeeeeeeeee.sha256`, size: 1, modified: at(now) },
    { key: archiveObjectKey(`${KEY}x`, 'ffffffffffffffff'), size: 1, modified: at(0) },
  ];
  assert.equal(collectable(beside, KEY, 'cccccccccccccccc', 'aaaaaaaaaaaaaaaa').sort(), [
    archiveObjectKey(KEY, 'aaaaaaaaaaaaaaaa'), archiveObjectKey(KEY, 'dddddddddddddddd'), `${KEY}.eeeeeeeeeeeeeeee.sha256`,
  ].sort());
  // Without its own object in the listing a save cannot date the others: it deletes only what it knows is unneeded.
  assert.equal(collectable(beside.slice(1), KEY, 'cccccccccccccccc', undefined), [`${KEY}.eeeeeeeeeeeeeeee.sha256`]);
});

test.run();
