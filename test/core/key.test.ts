import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { COMPRESSIONS } from '../../src/core/config.js';
import { BLOBS_FORMAT, blobsKey, cacheKey, cacheNameOf, markKey, objectKey, packKey, parseArchiveKey, parseCacheKey, parseMarkKey, whyMissing } from '../../src/core/key.js';
import { archiveObjectKey, besideOf, logicalListing } from '../../src/core/pointer.js';

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

test('one parser for both layouts: blob manifests are caches; packs, marks and markers are not', () => {
  const key = blobsKey('repo/pr-7', { cacheDirs: ['obj'], compression: 'zstd', salt: 'gcc-12' });
  assert.equal(parseCacheKey(key), { name: 'repo/pr-7', layout: 'blobs', format: BLOBS_FORMAT, settings: key.slice(-22, -14), salt: key.slice(-14, -6) });
  assert.is(cacheNameOf(key), 'repo/pr-7');
  assert.is(parseCacheKey(objectKey('main', { cacheDirs: ['obj'], compression: 'zstd' }))?.layout, 'archive');
  const pack = packKey('0011223344556677');
  for (const other of [pack, markKey(pack, 'gc'), markKey(pack, 'repack'), `${key}.restored`, `${key}.tmp-1-ab`]) assert.is(parseCacheKey(other), undefined, other);
  assert.equal(parseMarkKey(markKey(pack, 'repack')), { pack, kind: 'repack' });
  assert.is(parseMarkKey(pack), undefined);
  // The S3 pointer layout hides only what lies beside archive keys: manifests, packs and marks list as they are.
  const raw = [key, pack, markKey(pack, 'gc')].map((k) => ({ key: k, size: 1, modified: new Date(0) }));
  assert.equal(logicalListing(raw), raw);
});

test('a miss in one layout says so when the other layout has caches of the name', () => {
  const inputs = { cacheDirs: ['obj'], compression: 'zstd' as const };
  const blobs = cacheKey('main', { ...inputs, layout: 'blobs' });
  const archive = cacheKey('main', { ...inputs, layout: 'archive' });
  assert.match(whyMissing(blobs, [archive])!, /archive layout only/);
  assert.match(whyMissing(archive, [blobs])!, /blob layout only/);
  assert.match(whyMissing(blobs, [cacheKey('main', { ...inputs, layout: 'blobs', salt: 'x' })])!, /blob-layout caches .* another toolchain salt/);
});

test.run();
