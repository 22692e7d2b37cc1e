import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { noteAdded } from '../src/blobs/cache.js';
import { restore, save } from '../src/index.js';
import type { RestoreOptions } from '../src/options.js';
import type { SaveReport } from '../src/report.js';
import { tempDir, writeTree } from './helpers.js';

// The blob layout's save reads only what changed since restore: a file is skipped unread only when
// its inode, size, mtime and ctime are as restore left them, and its blob is still in the store.
const test = suite('blob layout: save reads what changed');
let work: string;
let remove: () => Promise<void>;
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  await remove();
});

const FILES = 12;
let builds = 0;

function machine(store: string, root?: string): RestoreOptions & { root: string } {
  const top = join(work, `build-${++builds}`);
  const tree = root ?? join(top, 'source');
  writeTree(tree, { 'src/main.c': 'int main;\n' });
  return { store, cacheName: 'main', cacheDirs: ['obj'], root: tree, stateDir: join(top, 'state'), layout: 'blobs', blobCache: join(top, 'blobs'), threads: 1 };
}

/** A first build that saves FILES artifacts; returns the store. */
async function firstBuild(name: string): Promise<string> {
  const store = join(work, name);
  const first = machine(store);
  await restore(first);
  for (let i = 0; i < FILES; i++) writeTree(first.root, { [`obj/o${i}.o`]: randomBytes(4096 + i) }, 1000);
  const saved = await save(first);
  assert.is(saved.outcome, 'saved', saved.reason);
  assert.equal(saved.blobs, { new: FILES + 3, unread: 0 });
  return store;
}

async function restored(store: string, root?: string): Promise<RestoreOptions & { root: string }> {
  const options = machine(store, root);
  const report = await restore(options);
  assert.is(report.outcome, 'hit', JSON.stringify(report.attempts));
  return options;
}

async function saved(options: RestoreOptions): Promise<SaveReport> {
  const report = await save(options);
  assert.is(report.outcome, 'saved', report.reason);
  return report;
}

/** What a fresh machine restores of obj/, file by file. */
async function contents(store: string): Promise<Record<string, string>> {
  const fresh = await restored(store);
  return Object.fromEntries(readdirSync(join(fresh.root, 'obj')).sort().map((name) => [name, readFileSync(join(fresh.root, 'obj', name)).toString('hex')]));
}

test('after a one-file edit, only that file is read and packed', async () => {
  const store = await firstBuild('store-edit');
  const next = await restored(store);
  writeFileSync(join(next.root, 'obj/o3.o'), randomBytes(5000));
  const report = await saved(next);
  // The edited file, ARTIFACTS and meta.json are new (MD5SUMS is not); the others are named unread.
  assert.equal(report.blobs, { new: 3, unread: FILES - 1 });
  assert.equal(await contents(store), Object.fromEntries(readdirSync(join(next.root, 'obj')).sort()
    .map((name) => [name, readFileSync(join(next.root, 'obj', name)).toString('hex')])));
});

test('a file rewritten in place with the same size and its old mtime put back is read again', async () => {
  const store = await firstBuild('store-same-size');
  const next = await restored(store);
  const path = join(next.root, 'obj/o5.o');
  const before = lstatSync(path);
  const content = randomBytes(before.size);
  writeFileSync(path, content);
  utimesSync(path, before.atime, before.mtime);
  assert.is(lstatSync(path).mtimeMs, before.mtimeMs);
  const report = await saved(next);
  assert.equal(report.blobs, { new: 3, unread: FILES - 1 });
  assert.is((await contents(store))['o5.o'], content.toString('hex'));
});

test('a chmod is a change: the file is read again and its mode saved', async () => {
  const store = await firstBuild('store-chmod');
  const next = await restored(store);
  chmodSync(join(next.root, 'obj/o1.o'), 0o755);
  const report = await saved(next);
  assert.is(report.blobs?.unread, FILES - 1);
  const fresh = await restored(store);
  assert.is(statSync(join(fresh.root, 'obj/o1.o')).mode & 0o777, 0o755);
});

test('a file whose pack is gone from the store is read and packed again, not named', async () => {
  const store = await firstBuild('store-gone');
  const next = await restored(store);
  rmSync(join(store, 'blobs/packs'), { recursive: true });
  writeFileSync(join(next.root, 'obj/o0.o'), randomBytes(100));
  const report = await saved(next);
  // Every file, MD5SUMS too: their pack is gone.
  assert.equal(report.blobs, { new: FILES + 3, unread: 0 });
  assert.is(Object.keys(await contents(store)).length, FILES);
});

test('a restore that relocated files leaves them out of what save may skip', async () => {
  const store = join(work, 'store-rooted');
  const first = machine(store);
  await restore(first);
  writeTree(first.root, { 'obj/deps.d': `${first.root}/src/main.c\n`, 'obj/plain.o': 'x'.repeat(100) }, 1000);
  await saved(first);
  const elsewhere = await restored(store);
  assert.is(readFileSync(join(elsewhere.root, 'obj/deps.d'), 'utf8'), `${elsewhere.root}/src/main.c\n`);
  writeTree(elsewhere.root, { 'obj/new.o': 'new' });
  const report = await saved(elsewhere);
  // deps.d now holds the new root: read, a new blob (with new.o, ARTIFACTS, meta.json); plain.o is as restore left it.
  assert.equal(report.blobs, { new: 4, unread: 1 });
});

test('a save of more than 64 MiB is packed on two threads into two packs; a small one on this thread into one', async () => {
  const store = join(work, 'store-split');
  const first = { ...machine(store), threads: 2 };
  await restore(first);
  // 72 MiB: 18 files of 4 MiB, half of them compressible.
  const files = Array.from({ length: 18 }, (_, i) => (i % 2 === 0 ? randomBytes(4 << 20) : Buffer.alloc(4 << 20, `object ${i} `)));
  files.forEach((data, i) => writeTree(first.root, { [`obj/big${i}.o`]: data }, 1000));
  const report = await saved(first);
  assert.equal(report.blobs, { new: 18 + 3, unread: 0 });
  assert.is(readdirSync(join(store, 'blobs/packs')).length, 2);
  const next = { ...(await restored(store)), threads: 2 };
  files.forEach((data, i) => assert.ok(readFileSync(join(next.root, `obj/big${i}.o`)).equals(data), `big${i}.o`));
  writeTree(next.root, { 'obj/big3.o': 'rewritten' }, 2000);
  await saved(next);
  assert.is(readdirSync(join(store, 'blobs/packs')).length, 3);
});

test('the local blob cache is trimmed once enough was added since the last trim', async () => {
  const cache = join(work, 'trim-cache');
  const blob = (n: number) => {
    const id = n.toString(16).padStart(64, '0');
    writeTree(cache, { [`${id.slice(0, 2)}/${id}`]: randomBytes(1000) }, 1000 + n);
  };
  for (let n = 0; n < 10; n++) blob(n);
  const count = () => readdirSync(join(cache, '00')).length;
  // Under an eighth of the limit added: no trim, however full the cache.
  await noteAdded(cache, 500, new Set(), 8000);
  assert.is(count(), 10);
  // Past it: the oldest blobs go until the cache fits the limit.
  await noteAdded(cache, 600, new Set(), 8000);
  assert.is(count(), 8);
  assert.ok(!readdirSync(join(cache, '00')).includes('0'.repeat(64)));
});

test.run();
