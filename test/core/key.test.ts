import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { COMPRESSIONS } from '../../src/core/config.js';
import { cacheNameOf, objectKey, parseArchiveKey, whyMissing } from '../../src/core/key.js';
import { archiveObjectKey, besideOf } from '../../src/core/pointer.js';

const test = suite('archive keys: one module makes and reads them');

test('every key objectKey makes reads back as its cache, for every compression (so ls and prune see every codec)', () => {
  for (const compression of COMPRESSIONS) {
    const key = objectKey('repo/pr-7', { cacheDirs: ['obj'], compression, salt: 'gcc-12' });
    const parsed = parseArchiveKey(key);
    assert.ok(parsed, key);
    assert.is(parsed!.name, 'repo/pr-7');
    assert.is(cacheNameOf(key), 'repo/pr-7');
    assert.ok(key.endsWith(parsed!.extension));
    // What lies beside it is never taken for a cache, and knows whose it is.
    const object = archiveObjectKey(key, '0011223344556677');
    assert.is(cacheNameOf(object), undefined, object);
    assert.equal(besideOf(object), { base: key, nonce: '0011223344556677', legacyDigest: false });
    assert.is(cacheNameOf(`${key}.restored`), undefined);
  }
});

test('a miss tells another salt from other settings', () => {
  const key = (compression: 'zstd' | 'gzip', salt: string) => objectKey('main', { cacheDirs: ['obj'], compression, salt });
  assert.match(whyMissing(key('zstd', 'a'), [key('zstd', 'b')])!, /another toolchain salt/);
  assert.match(whyMissing(key('zstd', 'a'), [key('gzip', 'a')])!, /other settings/);
  assert.is(whyMissing(key('zstd', 'a'), []), undefined);
});

test.run();
