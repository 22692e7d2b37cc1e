import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable } from 'node:stream';
import { keepUsable, recheckPacks } from '../src/blobs/gc.js';
import { readBlobManifest } from '../src/blobs/restore.js';
import { blobsKey, markKey, parseCacheKey } from '../src/core/key.js';
import { FileStore, pruneStore, restore, save, type Store } from '../src/index.js';
import { S3Store } from '../src/stores/s3.js';
import type { RestoreOptions } from '../src/options.js';
import { runCli, tempDir, writeTree } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

// Prune and garbage collection of the blob layout (#17 item 4): caches of both layouts listed and
// pruned, packs marked then swept after the grace, repacking, and saves racing prunes that never
// leave a manifest naming a blob that is gone.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const test = suite('blob layout: prune and GC');
let work: string;
let remove: () => Promise<void>;
let s3: TestS3;
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
  s3 = await startS3('nbc-gc');
});
test.after(async () => {
  await s3.close();
  await remove();
});

const HOUR = 3_600_000;
const S3_OPTIONS = () => ({ s3: { endpoint: s3.endpoint, region: 'us-east-1', credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } } });
let builds = 0;

type Build = RestoreOptions & { root: string };
function machine(store: string, cacheName: string, salt?: string, blobCache?: string): Build {
  const top = join(work, `build-${++builds}`);
  const root = join(top, 'source');
  writeTree(root, { 'src/a.c': 'int a;\n' });
  return {
    store, cacheName, cacheDirs: ['obj'], root, stateDir: join(top, 'state'), layout: 'blobs', blobCache: blobCache ?? join(top, 'blobs'),
    threads: 1, ...(salt === undefined ? {} : { salt }), ...(store.startsWith('s3://') ? S3_OPTIONS() : {}),
  };
}

async function build(options: Build, files: Buffer[]): Promise<void> {
  await restore(options);
  writeTree(options.root, Object.fromEntries(files.map((data, i) => [`obj/o${i}.o`, data])), 1000);
  const saved = await save(options);
  assert.is(saved.outcome, 'saved', saved.reason);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Every manifest in the store, each blob read from its pack and checked by its hash; returns how many. */
async function checkManifests(store: Store): Promise<number> {
  let count = 0;
  for (const object of await store.list()) {
    if (parseCacheKey(object.key)?.layout !== 'blobs') continue;
    const manifest = await readBlobManifest(store, object.key);
    if (!manifest) continue;
    for (const [id, location] of manifest.blobs) {
      const data = await store.getRange!(location.pack, location.offset, location.offset + location.size);
      assert.ok(data && sha256(data) === id, `${object.key} names ${id} in ${location.pack}, which is gone`);
    }
    count++;
  }
  return count;
}

const packsIn = (dir: string) => readdirSync(join(dir, 'blobs/packs')).sort();
const marksIn = (dir: string) => { try { return readdirSync(join(dir, 'blobs/marks')).sort(); } catch { return []; } };
/** Makes the blob layout's objects `hours` older: the time a grace period takes, without waiting for it. */
function age(dir: string, hours: number): void {
  for (const sub of ['packs', 'marks']) {
    const names = (() => { try { return readdirSync(join(dir, 'blobs', sub)); } catch { return []; } })();
    for (const name of names.filter((n) => !n.includes('.tmp'))) {
      const time = new Date(Date.now() - hours * HOUR);
      try { utimesSync(join(dir, 'blobs', sub, name), time, time); } catch { /* deleted meanwhile */ }
    }
  }
}
const pool = Array.from({ length: 12 }, () => randomBytes(8 << 10));

test('ls lists blob-layout caches with logical and stored sizes, and a total where dedup shows', async () => {
  const store = join(work, 'store-ls');
  const shared = pool.slice(0, 10);
  // One machine: its local index tells each save which blobs the store holds.
  for (const name of ['a', 'b', 'c']) await build(machine(store, name, undefined, join(work, 'ls-blobs')), [...shared, Buffer.from(name.repeat(4096))]);
  const ls = await runCli(['ls', '--store', store], { cwd: work });
  assert.is(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^NAME +SIZE +LOGICAL +AGE +KEY\na +0\.1 MB +0\.1 MB +\d+m +a\/b\d+-[0-9a-f]{16}\.blobs\nb .*\nc .*\ntotal: 0\.3 MB logical in 3 caches; the store holds 0\.1 MB: 0\.0 MB archives, 0\.0 MB manifests, 0\.1 MB packs \(0\.0 MB of them named by no cache\)\n$/, ls.stdout);
  const report = JSON.parse((await runCli(['ls', '--store', store, '--json', '-'], { cwd: work })).stdout) as {
    caches: { layout: string; size: number; logical: number }[]; totals: { logical: number; stored: number; packs: number; garbage: number };
  };
  assert.equal(report.caches.map((c) => c.layout), ['blobs', 'blobs', 'blobs']);
  // The random blobs are stored as they are: each cache's stored size holds them at least.
  for (const cache of report.caches) assert.ok(cache.logical >= 10 * (8 << 10) + 4096 && cache.size >= 10 * (8 << 10), JSON.stringify(cache));
  // Three caches of 11 files share 10: the store holds about one and a bit.
  assert.ok(report.totals.stored < 0.5 * report.totals.logical, JSON.stringify(report.totals));
  assert.is(report.totals.garbage, 0);
  // --lookup-only and a miss's explanation see blob-layout caches too.
  const lookup = await runCli(['restore', '--lookup-only', '--layout', 'blobs', '--store', store, '--cache-name', 'a', '--cache-dir', 'obj', '--json', '-'], { cwd: work });
  assert.match(lookup.stdout, /"outcome": "hit"/);
  const other = await runCli(['restore', '--lookup-only', '--store', store, '--cache-name', 'a', '--cache-dir', 'obj', '--json', '-'], { cwd: work });
  assert.match(other.stdout, /exist in the blob layout only/);
});

test('prune --keep, --older-than and --max-size select blob manifests; packs go only when no manifest names them, after the grace', async () => {
  const store = join(work, 'store-rules');
  const cache = join(work, 'rules-blobs');
  await build(machine(store, 'main', 'one', cache), pool.slice(0, 4));
  await build(machine(store, 'main', 'two'), pool.slice(4, 8));
  // other names two blobs of the first pack (its machine's index knows them) and adds one.
  await build(machine(store, 'other', undefined, cache), [...pool.slice(0, 2), pool[11]!]);
  const packs = packsIn(store);
  assert.is(packs.length, 3);
  const dry = await runCli(['prune', '--store', store, '--keep', '1', '--dry-run'], { cwd: work });
  assert.match(dry.stdout, /^would delete {2}main .*main\/b\d+-.*\.blobs\nwould mark {2}repack {2}blobs\/marks\/[0-9a-f]{16}\.repack\n$/);
  assert.is(packsIn(store).length, 3);
  assert.equal(marksIn(store), [], 'a dry run changes nothing');
  // main (salt one) goes; its pack is still named by other, half garbage: marked for repacking, kept.
  const kept = await pruneStore({ store, keep: 1, now: Date.now() + 2 * HOUR });
  assert.equal(kept.deleted.map((c) => c.name), ['main']);
  assert.equal(kept.gc.mark.map((m) => m.kind), ['repack']);
  assert.equal(kept.gc.deletePacks, []);
  assert.is(await checkManifests(new FileStore(store)), 2);
  assert.equal((await pruneStore({ store, olderThanMs: HOUR })).deleted, [], 'nothing that old');
  // --max-size: the least recently used (main, salt two) goes; its pack is marked, not yet deleted.
  const size = await pruneStore({ store, maxSize: 40_000, now: Date.now() + 4 * HOUR });
  assert.equal(size.deleted.map((c) => c.name), ['main']);
  assert.equal([size.gc.deletePacks, size.gc.mark.map((m) => m.kind)], [[], ['gc']]);
  // other saved again: its machine no longer names the blobs of the repack-marked pack.
  await build(machine(store, 'other', undefined, cache), [...pool.slice(0, 2), pool[11]!]);
  const swept = await pruneStore({ store, keep: 5, now: Date.now() + 6 * HOUR });
  assert.is(swept.gc.deletePacks.length, 2);
  assert.equal(marksIn(store), []);
  assert.is(packsIn(store).length, 2);
  assert.is(await checkManifests(new FileStore(store)), 1);
  assert.is((await restore(machine(store, 'other'))).outcome, 'hit');
});

test('repack: a pack mostly garbage is marked, the next save uploads its live blobs again, then it is collected', async () => {
  const store = join(work, 'store-repack');
  const files = pool.slice(0, 10);
  await build(machine(store, 'main'), files);
  const [old] = packsIn(store);
  const changed = [...files.slice(0, 3), ...Array.from({ length: 7 }, () => randomBytes(8 << 10))];
  await build(machine(store, 'main'), changed);
  const later = Date.now() + 2 * HOUR;
  assert.equal((await pruneStore({ store, keep: 1, now: later, repackBelow: 0.2 })).gc.mark, [], '3 of 10 live: above 0.2');
  assert.equal((await pruneStore({ store, keep: 1, now: later })).gc.mark, [{ key: `blobs/marks/${old!.slice(0, 16)}.repack`, kind: 'repack' }]);
  await build(machine(store, 'main'), changed);
  assert.equal(packsIn(store).length, 3, 'the live blobs of the old pack went into a new one');
  const swept = await pruneStore({ store, keep: 1, now: later + 2 * HOUR });
  assert.equal(swept.gc.deletePacks.map((p) => p.key), [`blobs/packs/${old}`]);
  assert.is(await checkManifests(new FileStore(store)), 1);
  assert.is((await restore(machine(store, 'main'))).outcome, 'hit');
});

/** `store`, running `between` once right after its first whole listing: a save between a prune's listing and its deletions. */
function pausing<T extends Store>(store: T, between: () => Promise<void>): T {
  const list = store.list.bind(store);
  let pending: (() => Promise<void>) | undefined = between;
  store.list = async (signal?: AbortSignal, under = '') => {
    const objects = await list(signal, under);
    const run = pending;
    pending = undefined;
    if (under === '' && run) await run();
    return objects;
  };
  return store;
}

for (const kind of ['directory', 'S3'] as const) {
  test(`${kind} store: a save between a prune's listing and its sweep never names blobs of a marked pack`, async () => {
    const location = kind === 'S3' ? `s3://${s3.bucket}/between` : join(work, 'store-between');
    const opened: Store[] = [];
    const open = () => {
      opened.push(kind === 'S3'
        ? new S3Store(s3.bucket, 'between', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } })
        : new FileStore(location));
      return opened.at(-1)!;
    };
    const packs = async () => (await open().list(undefined, 'blobs/packs/')).map((o) => o.key);
    await build(machine(location, 'main'), pool.slice(0, 6));
    const [gone] = await packs();
    const knows = machine(location, 'main');
    assert.is((await restore(knows)).outcome, 'hit', 'this machine knows the blobs of the first pack');
    // Other sources too: not even the sources' manifest (a blob as well) stays in the first pack.
    const next = machine(location, 'main');
    writeTree(next.root, { 'src/a.c': 'int b;\n' });
    await build(next, pool.slice(6, 12));
    const first = await pruneStore({ store: open(), keep: 1, now: Date.now() + 2 * HOUR });
    assert.equal(first.gc.mark, [{ key: `blobs/marks/${gone!.slice(12, 28)}.gc`, kind: 'gc' }]);
    const racing = { ...knows, cacheName: 'racer' };
    const swept = await pruneStore({
      store: pausing(open(), async () => assert.is((await save(racing)).outcome, 'saved')), keep: 1, now: Date.now() + 4 * HOUR,
    });
    assert.equal(swept.gc.deletePacks.map((p) => p.key), [gone]);
    assert.is(await checkManifests(open()), 2);
    assert.is((await restore(machine(location, 'racer'))).outcome, 'hit');
    for (const store of opened) store.close();
  });
}

test('a save checks the packs again before its manifest: one marked since it looked fails it', async () => {
  const store = join(work, 'store-recheck');
  await build(machine(store, 'main'), pool.slice(0, 3));
  const files = new FileStore(store);
  const manifest = (await readBlobManifest(files, (await files.list()).find((o) => parseCacheKey(o.key))!.key))!;
  const known = await keepUsable(files, new Map(manifest.blobs), undefined);
  assert.is(known.size, manifest.blobs.size);
  const [pack] = [...new Set([...known.values()].map((l) => l.pack))];
  await files.put(markKey(pack!, 'gc'), Readable.from([]));
  const error = await recheckPacks(files, known, undefined).then(() => undefined, (e: unknown) => e);
  assert.match(String(error), /prune marked or collected blobs\/packs\/[0-9a-f]{16}\.pack while this save ran/);
  // A manifest naming no pack of the old ones is written.
  await recheckPacks(files, new Map(), undefined);
  // Checked after the mark: that pack's blobs are unknown, uploaded again.
  assert.is((await keepUsable(files, new Map(manifest.blobs), undefined)).size, 0);
});

test('saves racing each other and prunes, many rounds: every manifest names blobs that exist', async () => {
  const store = join(work, 'store-race');
  const names = ['a', 'b', 'c'];
  let collected = 0;
  for (let round = 0; round < 5; round++) {
    // Between rounds the grace period passes: marks of the last round are due.
    if (round > 0) age(store, 2);
    const salt = round % 2 === 0 ? 'even' : 'odd';
    const saves = names.flatMap((name, n) => [0, 1].map((twin) => {
      const files = pool.filter((_, i) => (i + round + n + twin) % 3 !== 0);
      return build(machine(store, name, salt), files);
    }));
    // Two prunes run over and over while the saves run.
    let finished = false;
    const saving = Promise.all(saves).finally(() => { finished = true; });
    const lane = async () => {
      do collected += (await pruneStore({ store, keep: 1, gcGraceMs: HOUR })).gc.deletePacks.length;
      while (!finished);
    };
    await Promise.all([saving, lane(), lane()]);
    assert.ok(await checkManifests(new FileStore(store)) >= names.length, `round ${round}`);
  }
  assert.ok(collected > 0, 'packs were collected while saves ran');
  for (const name of names) assert.is((await restore(machine(store, name, 'even'))).outcome, 'hit', name);
});

test('on S3 through the command line: ls, a dry run, marks, then the sweep with --gc-grace', async () => {
  const store = ['--store', `s3://${s3.bucket}/gc`, '--endpoint', s3.endpoint];
  const env = { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x' };
  await build(machine(`s3://${s3.bucket}/gc`, 'a'), pool.slice(0, 4));
  await build(machine(`s3://${s3.bucket}/gc`, 'b'), pool.slice(2, 6));
  await build(machine(`s3://${s3.bucket}/gc`, 'a', 'new'), pool.slice(6, 8));
  const ls = await runCli(['ls', ...store], { cwd: work, env });
  assert.match(ls.stdout, /^NAME +SIZE +LOGICAL[\s\S]*\ntotal: /);
  assert.match(ls.stderr, /ls: 3 archives/);
  const dry = await runCli(['prune', ...store, '--keep', '1', '--gc-grace', '0s', '--dry-run'], { cwd: work, env });
  assert.match(dry.stdout, /^would delete {2}a .*\nwould mark {2}gc {2}blobs\/marks\/[0-9a-f]{16}\.gc\n$/);
  const marked = await runCli(['prune', ...store, '--keep', '1', '--gc-grace', '0s'], { cwd: work, env });
  assert.match(marked.stdout, /^deleted {2}a [^\n]*\nmarked {2}gc {2}blobs\/marks\/[0-9a-f]{16}\.gc\n$/);
  const swept = await runCli(['prune', ...store, '--keep', '1', '--gc-grace', '0s', '--json', '-'], { cwd: work, env });
  const report = JSON.parse(swept.stdout) as { gc: { deletedPacks: { key: string }[]; deletedMarks: string[] } };
  assert.is(report.gc.deletedPacks.length, 1, swept.stderr);
  assert.is(report.gc.deletedMarks.length, 1);
  assert.match(swept.stderr, /prune: deleted 0 archives, 0\.0 MB; packs: 1 pack 0\.0 MB, 0 marked, 1 mark cleared/);
  assert.is((await runCli(['prune', ...store, '--keep', '1', '--gc-grace', 'soon'], { cwd: work, env })).code, 2);
  assert.match((await runCli(['prune', ...store, '--gc-grace', '1h', '--dry-run'], { cwd: work, env })).stderr, /prune: would delete 0 archives, 0\.0 MB; 0\./, 'collect only');
  // S3 times are whole seconds: which of a's two caches --keep 1 kept may be either.
  const gone = /^deleted {2}a .* (a\/b\d+-[0-9a-f]{16}\.blobs)\n/.exec(marked.stdout)![1];
  const kept = gone === blobsKey('a', { cacheDirs: ['obj'], compression: 'zstd', salt: 'new' }) ? undefined : 'new';
  for (const [name, salt] of [['a', kept], ['b', undefined]] as const) {
    const report = await restore(machine(`s3://${s3.bucket}/gc`, name, salt));
    assert.is(report.outcome, 'hit', JSON.stringify([report.attempts, report.warnings]));
  }
});

test.run();
