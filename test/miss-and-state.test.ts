import { readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { objectKey } from '../src/core/key.js';
import { S3Store } from '../src/stores/s3.js';
import { startDaemon, type DaemonProcess } from './daemon-process.js';
import { runCli, snapshot, tempDir, warningsOf, writeTree } from './helpers.js';
import { startProxy, type ProxyRule } from './proxy.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';
import { metaEntries, rawTar } from './tar-fixture.js';

// #15 item 10: a store that cannot list turns a miss into nothing worse than a miss (not an
// "unusable" error that fails --strict); a damaged state recorded by restore is said, not dropped.
const test = suite('a miss stays a miss; damaged recorded state is reported');
let s3: TestS3;
let work: string;
let remove: () => Promise<void>;
let prefix = 0;
test.before(async () => {
  s3 = await startS3('miss');
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  await s3.close();
  await remove();
});

const ARGS = ['--cache-name', 'main', '--cache-dir', 'obj'];
const isListing = (url = '') => /[?&]list-type=2/.test(url);

async function fresh(): Promise<{ top: string; root: string }> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, { 'a.c': 'int a;\n' });
  return { top, root };
}

const LISTING_FAULTS: [string, ProxyRule][] = [
  ['403 AccessDenied', (_req, res) => res.writeHead(403, { 'content-type': 'application/xml' })
    .end('<Error><Code>AccessDenied</Code><Message>listing is not allowed</Message></Error>')],
  ['500 every time', (_req, res) => res.writeHead(500, { 'content-type': 'application/xml' })
    .end('<Error><Code>InternalError</Code><Message>injected</Message></Error>')],
  ['200 with a body that is not XML', (_req, res) => res.writeHead(200, { 'content-type': 'application/xml' }).end('{"not": "xml"')],
  ['the connection cut', (_req, res) => res.destroy()],
];

for (const [name, fault] of LISTING_FAULTS) {
  test(`S3 listing fails (${name}): a plain miss, exit 0 even with --strict`, async () => {
    const proxy = await startProxy(s3.port, (req, res, forward) => (isListing(req.url) ? fault(req, res, forward) : forward()));
    try {
      const { top, root } = await fresh();
      const before = snapshot(root);
      const result = await runCli(['restore', ...ARGS, '--strict', '--max-attempts', '1', '--store', `s3://${s3.bucket}/m${++prefix}`,
        '--endpoint', proxy.endpoint], { cwd: root, env: { NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x' } });
      assert.is(result.code, 0, result.stderr);
      assert.equal(warningsOf(result.stderr), []);
      assert.match(result.stderr, /restore: miss \(tried main: missing, the store could not be listed to say why/);
      assert.equal(snapshot(root), before);
    } finally {
      await proxy.close();
    }
  });
}

test('a daemon whose upstream cannot list: a plain miss with --strict, and an archive there still restores', async () => {
  const proxy = await startProxy(s3.port, (req, res, forward) => (isListing(req.url) ? res.destroy() : forward()));
  let daemon: DaemonProcess | undefined;
  try {
    daemon = await startDaemon(join(work, 'daemon'), s3, 'x', [], proxy.endpoint);
    const missed = await fresh();
    const result = await runCli(['restore', ...ARGS, '--strict'], { cwd: missed.root, env: { NIX_BUILD_TOP: missed.top, NBC_STORE: `unix://${daemon.socket}` } });
    assert.is(result.code, 0, result.stderr);
    assert.equal(warningsOf(result.stderr), []);
    assert.match(result.stderr, /restore: miss \(tried main: missing/);
    // An archive saved straight to the upstream store: the daemon reads it without a listing.
    const store = new S3Store(s3.bucket, 'daemon', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
    await store.put(objectKey('main', { cacheDirs: ['obj'], compression: 'zstd' }),
      Readable.from([execFileSync('zstd', ['-q', '-c'], { input: rawTar([{ path: 'obj/', type: 'Directory' }, { path: 'obj/a.o', data: 'a' }, ...metaEntries(1)]) })]));
    store.close();
    const hit = await fresh();
    const again = await runCli(['restore', ...ARGS, '--strict'], { cwd: hit.root, env: { NIX_BUILD_TOP: hit.top, NBC_STORE: `unix://${daemon.socket}` } });
    assert.is(again.code, 0, again.stderr);
    assert.match(again.stderr, /restore: hit main/, again.stderr);
    assert.is(readFileSync(join(hit.root, 'obj', 'a.o'), 'utf8'), 'a');
  } finally {
    await daemon?.stop();
    await proxy.close();
  }
});

/** Restore, build, save into a directory store; then a second build whose recorded manifest gets `damage`. */
async function saveWithDamagedState(damage: (manifest: string) => void, extra: string[] = []) {
  // Made beforehand, as a build's store directory must be (one outside the build is never created).
  const store = await mkdtemp(join(work, 'store-'));
  const first = await fresh();
  const env = (top: string) => ({ NIX_BUILD_TOP: top, NBC_STORE: store });
  await runCli(['restore', ...ARGS], { cwd: first.root, env: env(first.top) });
  writeTree(first.root, { 'obj/a.o': 'object a' });
  assert.match((await runCli(['save', ...ARGS], { cwd: first.root, env: env(first.top) })).stderr, /save: saved main/);
  const [archive] = readdirSync(join(store, 'main'));
  const saved = readFileSync(join(store, 'main', archive!));
  const second = await fresh();
  assert.match((await runCli(['restore', ...ARGS], { cwd: second.root, env: env(second.top) })).stderr, /restore: hit main/);
  writeTree(second.root, { 'obj/b.o': 'object b' });
  damage(join(second.top, '.nix-build-cache', 'MD5SUMS'));
  const save = await runCli(['save', ...ARGS, ...extra], { cwd: second.root, env: env(second.top) });
  const settle = await runCli(['settle', ...extra], { cwd: second.root, env: env(second.top) });
  return { save, settle, unchanged: readFileSync(join(store, 'main', archive!)).equals(saved) };
}

const DAMAGE: [string, (path: string) => void, RegExp][] = [
  ['a line that is not a manifest line', (path) => appendFileSync(path, 'this is not md5sum output\n'), /1 bad line, e\.g\. line \d+: not an MD5 digest/],
  ['a truncated last line', (path) => appendFileSync(path, '0123456789abcdef'), /1 bad line/],
  ['every line garbled', (path) => writeFileSync(path, readFileSync(path, 'utf8').replace(/[0-9a-f]{32}/g, 'zz')), /bad line/],
];

for (const [name, damage, problem] of DAMAGE) {
  test(`the recorded manifest has ${name}: save and settle say so in one warning, the stored archive stays`, async () => {
    const { save, settle, unchanged } = await saveWithDamagedState(damage);
    assert.is(save.code, 0, save.stderr);
    assert.equal(warningsOf(save.stderr).length, 1, save.stderr);
    assert.match(warningsOf(save.stderr)[0]!, /save failed, the build goes on: .*MD5SUMS, recorded by restore, is damaged/);
    assert.match(warningsOf(save.stderr)[0]!, problem);
    assert.ok(unchanged, 'the archive saved before is still there, byte for byte');
    assert.equal(warningsOf(settle.stderr).length, 1, settle.stderr);
    assert.match(settle.stderr, /settle failed, the build goes on: .*MD5SUMS, recorded by restore, is damaged/);
  });
}

test('the recorded manifest damaged, with --strict: save exits 1', async () => {
  const { save, unchanged } = await saveWithDamagedState((path) => appendFileSync(path, 'garbage\n'), ['--strict']);
  assert.is(save.code, 1, save.stderr);
  assert.match(save.stderr, /MD5SUMS, recorded by restore, is damaged/);
  assert.ok(unchanged);
});

test.run();
