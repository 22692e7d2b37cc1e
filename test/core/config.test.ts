import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkCacheDirs, checkCacheName } from '../../src/core/config.js';
import { objectKey, whyMissing } from '../../src/core/key.js';
import { normalizeRelative, resolveLinkTarget } from '../../src/core/paths.js';
import { ConfigError } from '../../src/core/errors.js';
import { resolveOptions } from '../../src/options.js';

const test = suite('configuration checks');

test('cache names: branch-like names pass; others say what is wrong and what was given', () => {
  for (const name of ['main', 'repo/feature-x', 'pr-12', 'a.b_c+d=e@f']) assert.is(checkCacheName('cacheName', name), undefined);
  assert.is(checkCacheName('cacheName', ''), 'cacheName: required (got "")');
  assert.match(checkCacheName('cacheName', 'a b') ?? '', /^cacheName: use letters.*\(got "a b"\)$/);
  for (const bad of ['/abs', 'a//b', 'a/../b', 'trailing/', '..']) assert.ok(checkCacheName('n', bad), bad);
  assert.match(checkCacheName('n', 'x'.repeat(201)) ?? '', /longer than 200/);
});

test('cache dirs are normalised; escapes, the meta dir and nesting are problems', () => {
  assert.equal(checkCacheDirs('cacheDirs', ['./dist/', 'obj', 'obj']), { dirs: ['dist', 'obj'], problems: [] });
  assert.equal(checkCacheDirs('cacheDirs', ['../x', '/abs', '.cache-meta', 'a', 'a/b']).problems, [
    'cacheDirs: must be a relative path without ".." (got "../x")',
    'cacheDirs: must be a relative path without ".." (got "/abs")',
    'cacheDirs: .cache-meta is reserved for the archive\'s manifest (got ".cache-meta")',
    'cacheDirs: a/b is inside a; list only a',
  ]);
  assert.equal(checkCacheDirs('cacheDirs', []).problems, ['cacheDirs: at least one directory is required (got [])']);
});

test('resolveOptions reports every problem at once in one ConfigError', () => {
  try {
    resolveOptions({ store: 's3x://nope', cacheName: 'bad name', cacheDirs: [], fallbacks: ['ok', '..'], threads: 0 });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.equal((error as ConfigError).problems, [
      'store: use a directory, file:///DIR, s3://BUCKET[/PREFIX] or unix:///SOCKET (a nix-build-cache serve daemon) (got "s3x://nope")',
      'cacheName: use letters, digits, "._+=@-" and "/" between non-empty parts (got "bad name")',
      'fallbacks[1]: use letters, digits, "._+=@-" and "/" between non-empty parts (got "..")',
      'threads: must be a positive integer (got 0)',
      'cacheDirs: at least one directory is required (got [])',
    ]);
  }
});

test('keys change with everything that changes an archive, and only with that', () => {
  const base = objectKey('main', { cacheDirs: ['obj', 'dist'], compression: 'gzip' });
  assert.match(base, /^main\/v2-[0-9a-f]{16}\.tar\.gz$/);
  const salted = objectKey('main', { cacheDirs: ['obj', 'dist'], compression: 'gzip', salt: 'gcc-13' });
  assert.is(salted.slice(0, 16), base.slice(0, 16), 'the salt changes only the second half');
  assert.match(whyMissing(salted, [base]) ?? '', /another toolchain salt/);
  assert.match(whyMissing(base, [objectKey('main', { cacheDirs: ['obj'], compression: 'gzip' })]) ?? '', /other settings/);
  assert.is(whyMissing(base, []), undefined);
  assert.is(objectKey('main', { cacheDirs: ['dist', 'obj'], compression: 'gzip' }), base, 'dir order does not matter');
  assert.is.not(objectKey('main', { cacheDirs: ['obj'], compression: 'gzip' }), base);
  assert.is.not(objectKey('main', { cacheDirs: ['obj', 'dist'], compression: 'none' }), base.replace('.tar.gz', '.tar'));
  assert.is.not(objectKey('main', { cacheDirs: ['obj', 'dist'], compression: 'gzip', salt: 'gcc-13' }), base);
});

test('relative paths: normalised, and anything that climbs is refused', () => {
  const normal: [string, string][] = [
    ['./a//b/', 'a/b'], ['a/b', 'a/b'], ['a/b/', 'a/b'], ['a//', 'a'], ['a/./b', 'a/b'], ['./', '.'], ['.', '.'], ['', '.'],
    ['a/.hidden', 'a/.hidden'], ['..a/b..', '..a/b..'], ['a/...', 'a/...'],
  ];
  for (const [path, expected] of normal) assert.is(normalizeRelative(path), expected, path);
  for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a/..', '..', 'a/../', '//x']) assert.is(normalizeRelative(bad), undefined, bad);
  assert.is(resolveLinkTarget('obj/l', '../src/a.h'), 'src/a.h');
  assert.is(resolveLinkTarget('obj/l', '../../x'), undefined);
  assert.is(resolveLinkTarget('l', '/etc'), undefined);
});

test.run();
