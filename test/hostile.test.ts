import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { objectKey } from '../src/core/key.js';
import { S3Store } from '../src/stores/s3.js';
import { runCli, snapshot, tempDir, warningsOf, writeTree } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';
import { gzip, metaEntries, putArchive, rawTar, type RawEntry } from './tar-fixture.js';

// One test per attack and store, in the manner of node-tar's advisories: each builds its hostile
// archive here, puts it where restore looks, and runs a real restore on a real tree.
const test = suite('hostile and damaged archives');
let work: string;
let remove: () => Promise<void>;
let s3: TestS3;
let s3Store: S3Store;
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
  s3 = await startS3('hostile');
  s3Store = new S3Store(s3.bucket, 'h', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
});
test.after(async () => {
  s3Store.close();
  await s3.close();
  await remove();
});

const SOURCES = { 'main.c': 'int main(void) { return 0; }\n', 'obj/keep': 'a source inside the cache dir\n', 'obj/sub/inner.h': 'int x;\n' };
/** The manifest of SOURCES, so that a restore of an archive carrying it leaves their times as they are. */
const SOURCE_MANIFEST = Object.entries(SOURCES).sort(([a], [b]) => (a < b ? -1 : 1))
  .map(([path, content]) => `${createHash('md5').update(content).digest('hex')}  ${path}\n`).join('');
const KEY = objectKey('main', { cacheDirs: ['obj'], compression: 'gzip' });
type StoreKind = 'file' | 's3';

interface Restored {
  top: string;
  root: string;
  code: number;
  stderr: string;
  warnings: string[];
  before: ReturnType<typeof snapshot>;
}

/** Puts `archive` in the store, restores it into a fresh build dir with a canary beside it. */
async function restoreArchive(kind: StoreKind, archive: Buffer, args: string[] = []): Promise<Restored> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, SOURCES);
  writeFileSync(join(top, 'canary'), 'canary');
  const prefix = top.split('/').pop()!;
  let storeArgs: string[];
  if (kind === 'file') {
    putArchive(join(top, 'store'), 'main', archive);
    storeArgs = ['--store', join(top, 'store')];
  } else {
    await s3Store.put(`${prefix}/${KEY}`, Readable.from([archive]));
    storeArgs = ['--store', `s3://${s3.bucket}/h/${prefix}`, '--endpoint', s3.endpoint];
  }
  const before = snapshot(root);
  const result = await runCli(['restore', '--cache-name', 'main', '--cache-dir', 'obj', '--compression', 'gzip', ...storeArgs, ...args], {
    cwd: root, env: { NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x' },
  });
  const warnings = warningsOf(result.stderr);
  return { top, root, code: result.code, stderr: result.stderr, warnings, before };
}

/** Nothing beside the tree but the state dir; the canary intact; no staging left. */
function nothingOutside(top: string, kind: StoreKind): void {
  const expected = ['.nix-build-cache', 'canary', 'source', ...(kind === 'file' ? ['store'] : [])].sort();
  assert.equal(readdirSync(top).sort(), expected);
  assert.is(readFileSync(join(top, 'canary'), 'utf8'), 'canary');
  assert.equal(readdirSync(join(top, '.nix-build-cache')).filter((name) => name.startsWith('staging')), []);
}

/** The refusal every hostile or damaged archive must end in, and (once per attack) exit 1 with --strict. */
async function refused(kind: StoreKind, archive: Buffer, warning: RegExp, args: string[] = []): Promise<Restored> {
  const result = await restoreArchive(kind, archive, args);
  assert.is(result.code, 0, result.stderr);
  assert.is(result.warnings.length, 1, result.stderr);
  assert.match(result.warnings[0]!, warning);
  assert.match(result.stderr, /restore: miss \(tried main: unusable\)/);
  assert.equal(snapshot(result.root), result.before);
  nothingOutside(result.top, kind);
  if (kind === 'file') {
    const strict = await restoreArchive(kind, archive, [...args, '--strict']);
    assert.is(strict.code, 1, 'non-zero with --strict');
    assert.equal(snapshot(strict.root), strict.before);
  }
  return result;
}

const good: RawEntry[] = [{ path: 'obj/', type: 'Directory' }, { path: 'obj/a.o', data: 'object a' }];
const valid = (entries: RawEntry[], files: number) => gzip(rawTar([...good, ...entries, ...metaEntries(files)]));

const REFUSED: [string, () => Buffer, RegExp, string[]?][] = [
  ['path traversal with ../', () => valid([{ path: '../escaped', data: 'x' }], 2), /\.\.\/escaped: absolute path or "\.\." in the path/],
  ['nested traversal a/../../', () => valid([{ path: 'obj/a/../../../escaped', data: 'x' }], 2), /obj\/a\/\.\.\/\.\.\/\.\.\/escaped: absolute path or "\.\."/],
  ['an absolute path', () => valid([{ path: '/tmp/nbc-absolute-target', data: 'x' }], 2), /absolute path or "\.\."/],
  ['a symlink pointing outside, then a file through it', () => valid([{ path: 'obj/evil', type: 'SymbolicLink', linkpath: '../..' },
    { path: 'obj/evil/pwned', data: 'x' }], 3), /obj\/evil: symlink to \.\.\/\.\. points outside the tree/],
  ['a symlink inside the tree, then a file through it', () => valid([{ path: 'obj/link', type: 'SymbolicLink', linkpath: '..' },
    { path: 'obj/link/main.c', data: 'overwritten' }], 3), /obj\/link\/main\.c: inside a path that the archive made a symlink/],
  ['a symlink chain that leaves the tree', () => valid([{ path: 'obj/up', type: 'SymbolicLink', linkpath: '..' },
    { path: 'obj/chain', type: 'SymbolicLink', linkpath: 'up/../..' }], 3), /obj\/chain: symlink to up\/\.\.\/\.\. leads through the symlink obj\/up/],
  ['a hard link to a file outside', () => valid([{ path: 'obj/h', type: 'Link', linkpath: '/etc/passwd' }], 2), /obj\/h: hard link to \/etc\/passwd/],
  ['a character device', () => valid([{ path: 'obj/null', type: 'CharacterDevice' }], 2), /obj\/null: entries of type CharacterDevice are not allowed/],
  ['a fifo', () => valid([{ path: 'obj/pipe', type: 'FIFO' }], 2), /obj\/pipe: entries of type FIFO are not allowed/],
  ['an entry outside the cache dirs', () => valid([{ path: 'src/evil.c', data: 'x' }], 2), /src\/evil\.c: outside the cache dirs/],
  ['the same path twice', () => valid([{ path: 'obj/a.o', data: 'again' }], 2), /obj\/a\.o: appears twice in the archive/],
  ['a manifest with malformed lines', () => gzip(rawTar([...good, ...metaEntries(1, 'not a manifest line\n')])), /\.cache-meta\/MD5SUMS: bad manifest, line 1: not an MD5 digest/],
  ['a manifest with an absurdly long name', () => gzip(rawTar([...good, ...metaEntries(1, `${'0'.repeat(32)}  ${'n'.repeat(5000)}\n`)])),
    /bad manifest, line 1: file name longer than 4096 bytes/],
  ['meta.json of a future format version', () => gzip(rawTar([...good, ...metaEntries(1).slice(0, 2),
    { path: '.cache-meta/meta.json', data: JSON.stringify({ format: 3, files: 1, dirs: 0, bytes: 0, sources: 0 }) }])),
  /\.cache-meta\/meta\.json: archive format 3 is not 2; made by another version/],
  ['a gzip bomb (unpacked bytes over --max-unpacked)', () => valid([{ path: 'obj/zeros', data: Buffer.alloc(8 << 20) }], 2),
    /obj\/zeros: unpacks to more than 1048576 bytes/, ['--max-unpacked', '1M']],
  ['a gzip bomb (entries over --max-entries)', () => valid(Array.from({ length: 200 }, (_, i) => ({ path: `obj/f${i}`, data: '' })), 201),
    /more than 100 entries/, ['--max-entries', '100']],
  ['a truncated archive', () => {
    const archive = valid([{ path: 'obj/big.o', data: randomBytes(300_000) }], 2);
    return archive.subarray(0, archive.length >> 1);
  }, /unexpected end of file|truncated/i],
  ['a corrupted gzip stream', () => {
    const archive = valid([{ path: 'obj/big.o', data: randomBytes(300_000) }], 2);
    archive.fill(0x55, archive.length >> 1, (archive.length >> 1) + 64);
    return archive;
  }, /cannot decompress the archive|damaged/],
  ['an archive cut at an entry boundary (no meta files)', () => gzip(rawTar(good)), /not a nix-build-cache archive/],
  ['an object that is not an archive at all', () => Buffer.from('<html>this is an error page, not an archive</html>'.repeat(20)),
    /not a tar archive, nor a compressed one/],
  ['an empty object', () => Buffer.alloc(0), /the archive is empty/],
];

for (const kind of ['file', 's3'] as const) {
  for (const [name, archive, warning, args] of REFUSED) {
    test(`${kind}: ${name} is refused whole`, async () => {
      await refused(kind, archive(), warning, args);
      assert.not.ok(existsSync('/tmp/nbc-absolute-target'));
    });
  }

  test(`${kind}: setuid and setgid bits are dropped, with a warning`, async () => {
    const result = await restoreArchive(kind, valid([{ path: 'obj/tool', data: '#!/bin/sh\n', mode: 0o6755 }], 2));
    assert.is(result.code, 0);
    assert.equal(result.warnings.length, 1, result.stderr);
    assert.match(result.warnings[0]!, /dropped setuid, setgid or sticky bits from 1 entries, e.g. obj\/tool/);
    assert.is(statSync(join(result.root, 'obj/tool')).mode & 0o7777, 0o755);
    nothingOutside(result.top, kind);
  });

  const notRestored: [string, RawEntry[], number, RegExp][] = [
    ['an entry shadowing a current source', [{ path: 'obj/keep', data: 'stale copy' }], 1, /obj\/keep: is a source file now/],
    ['a file where the tree has a directory', [{ path: 'obj/sub', data: 'a file' }], 1, /obj\/sub: is a source directory now/],
    ['a directory where the tree has a file', [{ path: 'obj/keep/', type: 'Directory' }, { path: 'obj/keep/x', data: 'x' }], 1,
      /obj\/keep: is a source file now|obj\/keep\/x: inside obj\/keep, which is a source file/],
  ];
  for (const [name, entries, files, warning] of notRestored) {
    test(`${kind}: ${name} is not restored, with a warning`, async () => {
      const result = await restoreArchive(kind, gzip(rawTar([{ path: 'obj/', type: 'Directory' }, ...entries, ...metaEntries(files, SOURCE_MANIFEST)])));
      assert.is(result.code, 0);
      assert.is(result.warnings.length, 1, result.stderr);
      assert.match(result.warnings[0]!, warning);
      assert.equal(snapshot(result.root), result.before);
      nothingOutside(result.top, kind);
    });
  }
}

test.run();
