import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FileStore, restore, save } from '../src/index.js';
import { S3Store } from '../src/stores/s3.js';
import type { RestoreOptions } from '../src/options.js';
import { runCli, snapshot, tempDir, writeTree } from './helpers.js';
import { startProxy } from './proxy.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

// The blob layout (#17, first milestone): the same tree and times as the archive layout, a warm
// save that writes about what changed, corruption found by hash, racing saves, a fresh machine.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const test = suite('blob layout');
let work: string;
let remove: () => Promise<void>;
let s3: TestS3;
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
  s3 = await startS3('blobs');
});
test.after(async () => {
  await s3.close();
  await remove();
});

const SOURCES = { 'src/a.c': 'int a;\n', 'src/b.c': 'int b;\n', 'Makefile': 'all:\n' };
const ARTIFACT = 64 << 10;
let builds = 0;

/** Options of a build in a fresh root, with its own state dir and (unless given) blob cache. */
function machine(store: string, layout: 'archive' | 'blobs', blobCache?: string): RestoreOptions & { root: string } {
  const top = join(work, `build-${++builds}`);
  const root = join(top, 'source');
  writeTree(root, SOURCES);
  const s3Options = store.startsWith('s3://')
    ? { s3: { endpoint: s3.endpoint, region: 'us-east-1', credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } } } : {};
  return {
    store, cacheName: 'main', cacheDirs: ['obj'], root, stateDir: join(top, 'state'), layout, blobCache: blobCache ?? join(top, 'blobs'),
    compression: 'gzip', threads: 1, ...s3Options,
  };
}

/** Writes the artifacts a build makes: 20 objects, an empty file, a symlink, an empty dir. */
function compile(root: string, seed: Buffer[]): void {
  const files: Record<string, Buffer | string> = { 'obj/empty': '' };
  seed.forEach((data, i) => { files[`obj/sub/o${i}.o`] = data; });
  writeTree(root, files, 1000 + seed.length);
  symlinkSync('sub/o0.o', join(root, 'obj/link'));
  mkdirSync(join(root, 'obj/empty-dir'));
}

const objects = () => Array.from({ length: 20 }, () => randomBytes(ARTIFACT));

function storeBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const info = statSync(join(dir, name));
    if (info.isFile()) total += info.size;
  }
  return total;
}

async function saveBuild(options: RestoreOptions & { root: string }, seed: Buffer[]) {
  const missed = await restore(options);
  assert.equal(missed.warnings, []);
  compile(options.root, seed);
  const saved = await save(options);
  assert.is(saved.outcome, 'saved', saved.reason);
  return saved;
}

test('a round trip gives the same tree and times as the archive layout, on a fresh machine too', async () => {
  const seed = objects();
  const trees: Record<string, unknown> = {};
  for (const layout of ['archive', 'blobs'] as const) {
    const store = join(work, `store-${layout}`);
    await saveBuild(machine(store, layout), seed);
    const fresh = machine(store, layout);
    const report = await restore(fresh);
    assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
    assert.equal(report.warnings, []);
    // Times are placed relative to when restore ran: compared as offsets from one artifact's. Directories
    // get no saved times (as in the archive layout), only when they were made.
    const lines = snapshot(join(fresh.root, 'obj'));
    const base = BigInt(/mtime=(\d+)/.exec(lines['sub/o0.o']!)![1]!);
    const tree = Object.entries(lines).map(([path, line]) => `${path} ${line.startsWith('dir') ? line.replace(/ mtime=\d+/, '')
      : line.replace(/mtime=(\d+)/, (_, ns: string) => `offset=${BigInt(ns) - base}`)}`);
    trees[layout] = { tree, artifacts: report.artifacts };
  }
  assert.ok((trees.blobs as { tree: string[] }).tree.length > 20);
  assert.equal(trees.blobs, trees.archive);
});

test('a warm save after a one-file edit writes about that file', async () => {
  const store = join(work, 'store-warm');
  const seed = objects();
  const first = await saveBuild(machine(store, 'blobs'), seed);
  assert.ok(first.archiveBytes > 20 * ARTIFACT, String(first.archiveBytes));
  const next = machine(store, 'blobs');
  assert.is((await restore(next)).outcome, 'hit');
  writeTree(next.root, { 'src/a.c': 'int a = 1;\n' }, 5);
  writeTree(next.root, { 'obj/sub/o3.o': randomBytes(ARTIFACT) }, 2000);
  const before = storeBytes(store);
  const warm = await save(next);
  assert.is(warm.outcome, 'saved', warm.reason);
  const written = storeBytes(store) - before;
  // The old manifest is replaced: what the store grew by is at most what was written.
  assert.ok(warm.archiveBytes <= 2 * ARTIFACT + (64 << 10), `${warm.archiveBytes} bytes written`);
  assert.ok(written <= warm.archiveBytes, `${written} > ${warm.archiveBytes}`);
  const check = machine(store, 'blobs');
  writeTree(check.root, { 'src/a.c': 'int a = 1;\n' }, 5);
  assert.is((await restore(check)).outcome, 'hit');
  assert.equal(readFileSync(join(check.root, 'obj/sub/o3.o')), readFileSync(join(next.root, 'obj/sub/o3.o')));
});

test('a corrupted blob is found by its hash and is a miss with one warning; the next save uploads it again', async () => {
  const store = join(work, 'store-corrupt');
  const seed = objects();
  await saveBuild(machine(store, 'blobs'), seed);
  const packs = readdirSync(join(store, 'blobs/packs'));
  assert.is(packs.length, 1);
  const pack = join(store, 'blobs/packs', packs[0]!);
  const data = readFileSync(pack);
  data[512 * 8 + 100]! ^= 0xff;
  writeFileSync(pack, data);
  const fresh = machine(store, 'blobs');
  const report = await restore(fresh);
  assert.is(report.outcome, 'miss');
  assert.is(report.attempts[0]?.result, 'unusable');
  assert.is(report.warnings.length, 1);
  assert.match(report.warnings[0]!, /blob [0-9a-f]{64} in blobs\/packs\/[0-9a-f]{16}\.pack does not match its hash/);
  assert.equal(readdirSync(fresh.root).sort(), ['Makefile', 'src']);

  // The build that missed makes the same objects: its save names no blob of the refused cache.
  compile(fresh.root, seed);
  const saved = await save(fresh);
  assert.is(saved.outcome, 'saved', saved.reason);
  const next = machine(store, 'blobs');
  const again = await restore(next);
  assert.is(again.outcome, 'hit', JSON.stringify(again.attempts));
  seed.forEach((data, i) => assert.equal(readFileSync(join(next.root, `obj/sub/o${i}.o`)), data));
});

test('a damaged local blob is fetched again from the store, and the local copy repaired', async () => {
  const store = `s3://${s3.bucket}/damaged-local`;
  const cache = join(work, 'shared-blobs');
  const seed = objects();
  await saveBuild(machine(store, 'blobs', cache), seed);
  const id = createHash('sha256').update(seed[5]!).digest('hex');
  const blob = join(cache, id.slice(0, 2), id);
  const data = readFileSync(blob);
  data[0]! ^= 0xff;
  writeFileSync(blob, data);
  const fresh = machine(store, 'blobs', cache);
  const report = await restore(fresh);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  assert.equal(report.warnings, []);
  assert.equal(readFileSync(join(fresh.root, 'obj/sub/o5.o')), seed[5]);
  assert.equal(readFileSync(blob), seed[5]);
});

test('a blob compressed in its pack is kept locally as that frame (<hash>.zst), read from there, and fetched again when damaged', async () => {
  const store = `s3://${s3.bucket}/local-frames`;
  const text = (i: number) => Buffer.from(`int object${i}(void) { return ${i}; }\n`.repeat(4000));
  const seed = Array.from({ length: 20 }, (_, i) => text(i));
  const saver = machine(store, 'blobs');
  await saveBuild(saver, seed);
  const id = createHash('sha256').update(seed[5]!).digest('hex');
  // The save kept the frame it packed; a restore on another machine keeps the frame it fetched.
  assert.ok(statSync(join(saver.blobCache!, id.slice(0, 2), `${id}.zst`)).size < seed[5]!.length / 10);
  const fetcher = machine(store, 'blobs');
  assert.is((await restore(fetcher)).outcome, 'hit');
  const frame = join(fetcher.blobCache!, id.slice(0, 2), `${id}.zst`);
  assert.equal(readdirSync(join(fetcher.blobCache!, id.slice(0, 2))), [`${id}.zst`]);

  // The next restore there reads the local frames: it reads no pack.
  const ranges: unknown[] = [];
  const s3Store = new S3Store(s3.bucket, 'local-frames', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
  const watched = new Proxy(s3Store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (property === 'getRange') ranges.push(args);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const reader = { ...machine(store, 'blobs', fetcher.blobCache), store: watched };
  const local = await restore(reader);
  assert.is(local.outcome, 'hit', JSON.stringify(local.attempts));
  assert.equal(ranges, []);
  seed.forEach((data, i) => assert.equal(readFileSync(join(reader.root, `obj/sub/o${i}.o`)), data));

  // A damaged frame is fetched again, without a warning, and its local copy repaired.
  const data = readFileSync(frame);
  data[data.length >> 1]! ^= 0x55;
  writeFileSync(frame, data);
  const repaired = machine(store, 'blobs', fetcher.blobCache);
  const report = await restore(repaired);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  assert.equal(report.warnings, []);
  assert.equal(readFileSync(join(repaired.root, 'obj/sub/o5.o')), seed[5]);
  assert.not.equal(readFileSync(frame), data);
});

test('a store without ranged reads has its packs read from the start', async () => {
  const dir = join(work, 'store-no-ranges');
  const seed = objects();
  await saveBuild(machine(dir, 'blobs'), seed);
  const store = new FileStore(dir);
  Object.defineProperty(store, 'getRange', { value: undefined });
  const fresh = { ...machine(dir, 'blobs'), store };
  const report = await restore(fresh);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  for (let i = 0; i < 20; i++) assert.equal(readFileSync(join(fresh.root, `obj/sub/o${i}.o`)), seed[i]);
});

test('on S3: a fresh machine restores by ranges, and racing saves leave a whole manifest', async () => {
  const store = `s3://${s3.bucket}/race`;
  const seeds = [objects(), objects()];
  const builds = seeds.map(() => machine(store, 'blobs'));
  for (const options of builds) assert.is((await restore(options)).outcome, 'miss');
  builds.forEach((options, i) => compile(options.root, seeds[i]!));
  const saves = await Promise.all(builds.map((options) => save(options)));
  for (const saved of saves) assert.is(saved.outcome, 'saved', saved.reason);
  const fresh = machine(store, 'blobs');
  rmSync(fresh.blobCache!, { recursive: true, force: true });
  const report = await restore(fresh);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  assert.equal(report.warnings, []);
  const got = readFileSync(join(fresh.root, 'obj/sub/o7.o'));
  const winner = seeds.findIndex((seed) => seed[7]!.equals(got));
  assert.ok(winner >= 0);
  for (let i = 0; i < 20; i++) assert.equal(readFileSync(join(fresh.root, `obj/sub/o${i}.o`)), seeds[winner]![i]);
});

test('on S3: when one of a big save\'s two pack uploads is refused, the save tells that, and the cache stays as it was', async () => {
  const first = machine(`s3://${s3.bucket}/two-packs`, 'blobs');
  const seed = objects();
  await saveBuild(first, seed);
  // Past 64 MiB to read: two packs, uploaded at once. The proxy refuses every part of the second it
  // sees (the first is then stopped: what the save tells is still the refusal).
  const packs: string[] = [];
  let refused: string | undefined;
  const proxy = await startProxy(s3.port, (req, res, forward) => {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    if (path.includes('/blobs/packs/') && !packs.includes(path)) packs.push(path);
    if (req.method === 'PUT' && path === packs[1]) {
      refused = path;
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
    } else forward();
  });
  try {
    const next = { ...machine(`s3://${s3.bucket}/two-packs`, 'blobs'), threads: 2, s3: { ...first.s3!, endpoint: proxy.endpoint } };
    assert.is((await restore(next)).outcome, 'hit');
    for (let i = 0; i < 18; i++) writeTree(next.root, { [`obj/big/b${i}.o`]: randomBytes(4 << 20) }, 3000);
    const report = await save(next);
    assert.is(report.outcome, 'error');
    assert.ok(refused !== undefined);
    assert.is(report.warnings.length, 1, report.warnings.join('\n'));
    assert.match(report.warnings[0]!, /Access ?Denied|403/);
    assert.not.match(report.warnings[0]!, /abort/i);
  } finally {
    await proxy.close();
  }
  const check = machine(`s3://${s3.bucket}/two-packs`, 'blobs');
  assert.is((await restore(check)).outcome, 'hit');
  assert.equal(readdirSync(join(check.root, 'obj')).sort(), readdirSync(join(first.root, 'obj')).sort());
  for (let i = 0; i < 20; i++) assert.equal(readFileSync(join(check.root, `obj/sub/o${i}.o`)), seed[i]);
});

test('the command line: --layout blobs, the index of a directory store kept in $XDG_CACHE_HOME but no copies of its blobs', async () => {
  const top = join(work, 'cli');
  const env = { NBC_STORE: join(top, 'store'), NBC_CACHE_NAME: 'main', NBC_CACHE_DIRS: 'obj', NIX_BUILD_TOP: join(top, 'a'), XDG_CACHE_HOME: join(top, 'xdg') };
  const root = join(top, 'a', 'source');
  writeTree(root, SOURCES);
  mkdirSync(join(top, 'store'));
  assert.is((await runCli(['restore', '--layout', 'blobs'], { cwd: root, env })).code, 0);
  writeTree(root, { 'obj/a.o': 'object' });
  assert.is((await runCli(['save', '--layout', 'blobs'], { cwd: root, env })).code, 0);
  assert.ok(readdirSync(join(top, 'store', 'main'))[0]!.endsWith('.blobs'));
  assert.equal(readdirSync(join(top, 'xdg', 'nix-build-cache', 'blobs')), ['index']);
  const other = join(top, 'b', 'source');
  writeTree(other, SOURCES);
  const restored = await runCli(['restore', '--layout', 'blobs'], { cwd: other, env: { ...env, NIX_BUILD_TOP: join(top, 'b') } });
  assert.is(restored.code, 0, restored.stderr);
  assert.is(readFileSync(join(other, 'obj/a.o'), 'utf8'), 'object');
});

test.run();
