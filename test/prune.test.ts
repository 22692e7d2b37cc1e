import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { S3Store } from '../src/stores/s3.js';
import { runCli, tempDir, writeTree } from './helpers.js';
import { startDaemon } from './daemon-process.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

// This process makes an S3 client of its own; the SDK's Node-version notice is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const test = suite('prune --max-size');
let dir: string;
let remove: () => Promise<void>;
let s3: TestS3;
test.before(async () => { s3 = await startS3(); });
test.after(() => s3.close());
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

interface Listed { name: string; size: number; lastRestored?: string }

/** Saves one archive for each name, in order, from trees of their own. */
async function saveAll(names: string[], store: string[], env: Record<string, string> = {}): Promise<(name: string) => string[]> {
  const args = (name: string) => ['--cache-name', name, '--cache-dir', 'obj', '--state-dir', join(dir, `state-${name}`), ...store];
  for (const name of names) {
    const root = join(dir, name);
    writeTree(root, { 'a.c': name });
    await runCli(['restore', ...args(name)], { cwd: root, env });
    writeTree(join(root, 'obj'), { 'a.o': name.repeat(1000) });
    assert.match((await runCli(['save', ...args(name)], { cwd: root, env })).stderr, /save: saved/);
    rmSync(join(root, 'obj'), { recursive: true });
  }
  return args;
}

async function ls(store: string[], env: Record<string, string> = {}): Promise<Listed[]> {
  return (JSON.parse((await runCli(['ls', ...store, '--json', '-'], { cwd: dir, env })).stdout) as { caches: Listed[] }).caches;
}

test('directory store: a restore keeps its archive over newer saves; the least recently used go first', async () => {
  const store = ['--store', join(dir, 'store')];
  const args = await saveAll(['a', 'b', 'c'], store);
  assert.match((await runCli(['restore', ...args('a')], { cwd: join(dir, 'a') })).stderr, /restore: hit/);
  const caches = await ls(store);
  assert.equal(caches.map((c) => [c.name, c.lastRestored !== undefined]), [['a', true], ['b', false], ['c', false]]);
  const size = (name: string) => caches.find((c) => c.name === name)!.size;
  const max = `${size('a') + size('c')}`;
  const dry = await runCli(['prune', ...store, '--max-size', max, '--dry-run'], { cwd: dir });
  assert.match(dry.stdout, /^would delete +b +/);
  assert.equal((await ls(store)).length, 3);
  const pruned = await runCli(['prune', ...store, '--max-size', max], { cwd: dir });
  assert.match(pruned.stdout, /^deleted +b +[^\n]*\n$/);
  assert.equal((await ls(store)).map((c) => c.name), ['a', 'c']);
  // The marker goes with its archive.
  await runCli(['prune', ...store, '--max-size', '1'], { cwd: dir });
  assert.equal((await ls(store)), []);
  const { readdirSync } = await import('node:fs');
  assert.equal(readdirSync(join(dir, 'store'), { recursive: true }).filter((f) => String(f).includes('.tar')), []);
  const none = await runCli(['prune', ...store], { cwd: dir });
  assert.is(none.code, 2);
  assert.match(none.stderr, /give --older-than, --keep, --max-size or several/);
});

test('S3 store: restores leave a marker beside the archive; eviction deletes both and counts sizes', async () => {
  const store = ['--store', `s3://${s3.bucket}/lru`, '--endpoint', s3.endpoint];
  const env = { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x' };
  const args = await saveAll(['a', 'b'], store, env);
  assert.match((await runCli(['restore', ...args('b')], { cwd: join(dir, 'b'), env })).stderr, /restore: hit/);
  const caches = await ls(store, env);
  assert.equal(caches.map((c) => [c.name, c.lastRestored !== undefined]), [['a', false], ['b', true]]);
  const total = caches.reduce((sum, c) => sum + c.size, 0);
  assert.is((await runCli(['prune', ...store, '--max-size', `${total}`], { cwd: dir, env })).stdout, '');
  assert.match((await runCli(['prune', ...store, '--max-size', `${total - 1}`], { cwd: dir, env })).stdout, /^deleted +\w [^\n]*\n$/);
  await runCli(['prune', ...store, '--max-size', '1'], { cwd: dir, env });
  const raw = new S3Store(s3.bucket, 'lru', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
  assert.equal((await raw.list()).map((o) => o.key).filter((key) => key.includes('.tar')), [], 'no archive, digest or marker is left');
  raw.close();
});

test('through the daemon: the marker reaches its upstream store; a read-only daemon refuses it without a warning', async () => {
  const daemon = await startDaemon(join(dir, 'rw'), s3, 'x');
  const readOnly = await startDaemon(join(dir, 'ro'), s3, 'x', ['--read-only']);
  try {
    const store = ['--store', `unix://${daemon.socket}`];
    const args = await saveAll(['d'], store);
    assert.match((await runCli(['restore', ...args('d')], { cwd: join(dir, 'd') })).stderr, /restore: hit/);
    assert.ok((await ls(store))[0]!.lastRestored, 'marker written through the daemon');
    const stored = (await ls(['--store', `s3://${s3.bucket}/daemon`, '--endpoint', s3.endpoint], { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x' }));
    assert.ok(stored.find((c) => c.name === 'd')?.lastRestored, 'and it is in the upstream S3 store');
    rmSync(join(dir, 'd', 'obj'), { recursive: true, force: true });
    const viaReadOnly = await runCli(['restore', ...args('d'), '--store', `unix://${readOnly.socket}`], { cwd: join(dir, 'd') });
    assert.match(viaReadOnly.stderr, /restore: hit/);
    assert.not.match(viaReadOnly.stderr, /warning/);
    assert.match((await runCli(['prune', ...store, '--max-size', '1'], { cwd: dir })).stdout, /^deleted +d /);
    const raw = new S3Store(s3.bucket, 'daemon', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
    assert.equal((await raw.list()).map((o) => o.key).filter((key) => key.startsWith('d/')), []);
    raw.close();
  } finally {
    await daemon.stop();
    await readOnly.stop();
  }
});

test.run();
