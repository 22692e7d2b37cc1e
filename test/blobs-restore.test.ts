import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatBlobManifest, type BlobEntry } from '../src/core/blobs.js';
import { blobsKey } from '../src/core/key.js';
import { FETCHES, RUN } from '../src/blobs/fetch.js';
import { sha256 } from '../src/blobs/cache.js';
import { restore, save } from '../src/index.js';
import type { RestoreOptions } from '../src/options.js';
import { serve, type Daemon } from '../src/serve/daemon.js';
import { DaemonStore } from '../src/stores/daemon.js';
import { DAEMON_PROTOCOL, PROTOCOL_HEADER } from '../src/stores/protocol.js';
import { FileStore } from '../src/stores/file.js';
import { S3Store } from '../src/stores/s3.js';
import type { Store } from '../src/stores/store.js';
import { tempDir, writeTree } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

// The blob layout's restore side (#17): hostile manifests are refused before anything is written,
// ranged reads through the daemon (and its disk cache), few requests for many small files, and
// bounded reads for a blob bigger than a run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const test = suite('blob layout restore');
let work: string;
let remove: () => Promise<void>;
let s3: TestS3;
const daemons: Daemon[] = [];
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
  s3 = await startS3('blobs-restore');
});
test.after(async () => {
  for (const daemon of daemons) await daemon.close();
  await s3.close();
  await remove();
});

const SOURCES = { 'main.c': 'int main;\n' };
let builds = 0;

/** A fresh build dir with its own state dir and blob cache, restoring from `store`. */
function machine(store: Store | string): RestoreOptions & { root: string } {
  const top = join(work, `build-${++builds}`);
  const root = join(top, 'source');
  writeTree(root, SOURCES);
  return { store, cacheName: 'main', cacheDirs: ['obj'], root, stateDir: join(top, 'state'), layout: 'blobs', blobCache: join(top, 'blobs'), threads: 2 };
}

/** Every call to the store, by operation, and the size of each ranged read. */
function counting(store: Store): { store: Store; calls: Record<string, number>; ranges: number[]; mostAtOnce: () => number } {
  const calls: Record<string, number> = {};
  const ranges: number[] = [];
  let now = 0;
  let most = 0;
  const counted = new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls[String(property)] = (calls[String(property)] ?? 0) + 1;
        if (property !== 'getRange') return (value as (...a: unknown[]) => unknown).apply(target, args);
        ranges.push((args[2] as number) - (args[1] as number));
        most = Math.max(most, ++now);
        return ((value as (...a: unknown[]) => Promise<unknown>).apply(target, args)).finally(() => now--);
      };
    },
  });
  return { store: counted, calls, ranges, mostAtOnce: () => most };
}

async function build(options: RestoreOptions & { root: string }, files: Record<string, Buffer | string>): Promise<void> {
  assert.is((await restore(options)).outcome, 'miss');
  writeTree(options.root, files, 1000);
  const saved = await save(options);
  assert.is(saved.outcome, 'saved', saved.reason);
}

/** Puts a hand-made manifest (and a pack holding `content`) into a directory store. */
function hostileStore(name: string, entries: BlobEntry[], content: Buffer, size = content.length): string {
  const dir = join(work, name);
  const pack = 'blobs/packs/0123456789abcdef.pack';
  mkdirSync(join(dir, 'blobs/packs'), { recursive: true });
  writeFileSync(join(dir, pack), content);
  const blobs = new Map([[sha256(content), { pack, offset: 0, size }]]);
  const key = blobsKey('main', { cacheDirs: ['obj'], compression: 'zstd' });
  mkdirSync(join(dir, key, '..'), { recursive: true });
  writeFileSync(join(dir, key), gzipSync(formatBlobManifest({ entries, blobs })));
  return dir;
}

const HOSTILE: [string, (id: string, size: number) => BlobEntry[], RegExp][] = [
  ['a path with ..', (id, size) => [{ path: 'obj/../../x', type: 'File', mode: 0o644, mtime: 1, size, blob: id }], /absolute path or "\.\."/],
  ['an absolute path', (id, size) => [{ path: '/tmp/x', type: 'File', mode: 0o644, mtime: 1, size, blob: id }], /absolute path or "\.\."/],
  ['a symlink out of the tree', () => [{ path: 'obj/l', type: 'SymbolicLink', mode: 0o777, mtime: 1, size: 0, linkpath: '../../../x' }], /points outside the tree/],
  ['a file through a symlink', (id, size) => [
    { path: 'obj/l', type: 'SymbolicLink', mode: 0o777, mtime: 1, size: 0, linkpath: '.' },
    { path: 'obj/l/x', type: 'File', mode: 0o644, mtime: 1, size, blob: id }], /inside a path that the archive made a symlink/],
  ['a path twice', (id, size) => [
    { path: 'obj/x', type: 'File', mode: 0o644, mtime: 1, size, blob: id },
    { path: 'obj/x', type: 'File', mode: 0o644, mtime: 1, size, blob: id }], /appears twice/],
  ['a huge declared size', (id) => [{ path: 'obj/x', type: 'File', mode: 0o644, mtime: 1, size: 2 ** 50, blob: id }], /unpacks to more than/],
];

for (const [what, entries, says] of HOSTILE) {
  test(`a manifest with ${what} is refused before anything is written`, async () => {
    const content = Buffer.from('hostile\n');
    const size = what === 'a huge declared size' ? 2 ** 50 : content.length;
    const store = hostileStore(`hostile-${builds}`, entries(sha256(content), size), content, size);
    const options = machine(store);
    const report = await restore(options);
    assert.is(report.outcome, 'miss');
    assert.is(report.attempts[0]?.result, 'unusable');
    assert.match(report.warnings.join('\n'), says);
    assert.equal(readdirSync(options.root), ['main.c']);
    assert.not.ok(existsSync(join(options.root, '..', 'x')));
  });
}

test('through the daemon: ranged reads of packs, from its disk cache when it has them', async () => {
  const upstream = new FileStore(join(work, 'daemon-upstream'));
  const log: string[] = [];
  const socket = join(work, 'daemon', 'socket');
  daemons.push(await serve({ socket, upstream, diskCache: join(work, 'daemon', 'disk'), log: (line) => log.push(line) }));
  const seed = Array.from({ length: 8 }, () => randomBytes(100 << 10));
  const files = Object.fromEntries(seed.map((data, i) => [`obj/o${i}.o`, data]));
  await build(machine(new DaemonStore(socket)), files);
  // The save went through the daemon: the pack is in its disk cache.
  log.length = 0;
  const fresh = machine(new DaemonStore(socket));
  assert.is((await restore(fresh)).outcome, 'hit');
  seed.forEach((data, i) => assert.equal(readFileSync(join(fresh.root, `obj/o${i}.o`)), data));
  const packReads = log.filter((line) => line.includes('blobs/packs/'));
  assert.ok(packReads.length > 0);
  for (const line of packReads) assert.match(line, /^GET \S+ 206 .* from disk/);

  // A daemon without the pack on disk reads the range upstream.
  const bare = join(work, 'daemon-bare', 'socket');
  daemons.push(await serve({ socket: bare, upstream, log: (line) => log.push(line) }));
  log.length = 0;
  const other = machine(new DaemonStore(bare));
  assert.is((await restore(other)).outcome, 'hit');
  seed.forEach((data, i) => assert.equal(readFileSync(join(other.root, `obj/o${i}.o`)), data));
  for (const line of log.filter((l) => l.includes('blobs/packs/'))) assert.match(line, /^GET \S+ 206 .* from upstream/);
});

test('a daemon from before ranged reads answers one with the whole object: the range is cut from it as it streams', async () => {
  const object = randomBytes(300 << 10);
  const socket = join(work, 'old-daemon.socket');
  const old = createServer((_req, res) => {
    res.writeHead(200, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), 'content-length': object.length });
    res.end(object);
  });
  await new Promise<void>((resolve) => old.listen(socket, resolve));
  try {
    const into = Buffer.alloc(64 << 10);
    const filled: number[] = [];
    const data = await new DaemonStore(socket).getRange('blobs/packs/0123456789abcdef.pack', 100_000, 150_000, undefined, into, (n) => filled.push(n));
    assert.equal(data, object.subarray(100_000, 150_000));
    assert.is(data!.buffer, into.buffer);
    assert.is(filled.at(-1), 50_000);
  } finally {
    await new Promise((resolve) => old.close(resolve));
  }
});

test('on S3, a restore of many small files makes a few requests, not one per file', async () => {
  const s3Store = () => new S3Store(s3.bucket, 'small', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 3000; i++) files[`obj/d${i % 30}/f${i}.o`] = randomBytes(100 + (i % 2000));
  await build(machine(s3Store()), files);
  const { store, calls } = counting(s3Store());
  const fresh = machine(store);
  const report = await restore(fresh);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  assert.equal(readFileSync(join(fresh.root, 'obj/d7/f1237.o')), files['obj/d7/f1237.o']);
  const requests = Object.values(calls).reduce((sum, n) => sum + n, 0);
  assert.ok(requests <= 6, JSON.stringify(calls));
});

test('without a usable local blob cache (a sandboxed build), fetched blobs go straight to staging', async () => {
  const dir = join(work, 'store-sandbox');
  const data = randomBytes(200 << 10);
  await build(machine(dir), { 'obj/a.o': data });
  const notADir = join(work, 'not-a-dir');
  writeFileSync(notADir, '');
  const fresh = { ...machine(dir), blobCache: join(notADir, 'blobs') };
  const report = await restore(fresh);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  assert.equal(report.warnings, []);
  assert.equal(readFileSync(join(fresh.root, 'obj/a.o')), data);
  assert.equal(readdirSync(fresh.stateDir!).filter((name) => name.startsWith('blobs-')), []);
});

test('a blob bigger than a run is read in pieces of at most a run, a few reads at a time', async () => {
  const s3Store = () => new S3Store(s3.bucket, 'big', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
  const big = randomBytes(RUN + (3 << 20));
  const small = Array.from({ length: 3 }, () => randomBytes(1 << 20));
  await build(machine(s3Store()), { 'obj/big.o': big, 'obj/twin.o': big, ...Object.fromEntries(small.map((data, i) => [`obj/s${i}.o`, data])) });
  const { store, ranges, mostAtOnce } = counting(s3Store());
  const fresh = machine(store);
  const report = await restore(fresh);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  assert.equal(readFileSync(join(fresh.root, 'obj/big.o')), big);
  assert.equal(readFileSync(join(fresh.root, 'obj/twin.o')), big);
  small.forEach((data, i) => assert.equal(readFileSync(join(fresh.root, `obj/s${i}.o`)), data));
  assert.ok(ranges.length >= 3, JSON.stringify(ranges));
  for (const bytes of ranges) assert.ok(bytes <= RUN, `a read of ${bytes} bytes`);
  assert.ok(mostAtOnce() <= FETCHES);
  // Kept in the local blob cache, whole.
  const id = sha256(big);
  assert.equal(readFileSync(join(fresh.blobCache!, id.slice(0, 2), id)), big);
});

test.run();
