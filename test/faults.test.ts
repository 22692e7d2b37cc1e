import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, execFileAsync, runCli, snapshot, tempDir, warningsOf, writeTree } from './helpers.js';
import { isArchive, startProxy, type Proxy } from './proxy.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

// Faults at the S3 store's boundary: each ends in one warning, an unchanged tree, and (for upload
// faults) the previous archive still restorable.
const test = suite('faults at the S3 boundary');
let s3: TestS3;
let work: string;
let remove: () => Promise<void>;
let prefix = 0;
test.before(async () => {
  s3 = await startS3('faults');
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  await s3.close();
  await remove();
});

const SOURCES = { 'a.c': 'int a;\n', 'obj/keep': 'source\n' };
const BLOB = randomBytes(4 << 20);

function env(endpoint: string, store: string): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x', NBC_STORE: store, NBC_S3_ENDPOINT: endpoint };
}

interface Build {
  top: string;
  root: string;
}

async function fresh(): Promise<Build> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, SOURCES);
  return { top, root };
}

const ARGS = ['--cache-name', 'main', '--cache-dir', 'obj'];

/** Restore, "build" (write the blob), save: leaves an archive of the blob under `store`. */
async function seed(store: string): Promise<void> {
  const build = await fresh();
  const e = { ...env(s3.endpoint, store), NIX_BUILD_TOP: build.top };
  assert.is((await runCli(['restore', ...ARGS], { cwd: build.root, env: e })).code, 0);
  writeFileSync(join(build.root, 'obj', 'blob.bin'), BLOB);
  assert.match((await runCli(['save', ...ARGS], { cwd: build.root, env: e })).stderr, /save: saved main/);
}

/** A restore through `endpoint` that must fail open: one warning matching `warning`, tree unchanged. */
async function restoreFailsOpen(endpoint: string, store: string, warning: RegExp, args: string[] = [], build?: Build): Promise<void> {
  const { top, root } = build ?? await fresh();
  const before = snapshot(root);
  const result = await runCli(['restore', ...ARGS, ...args], { cwd: root, env: { ...env(endpoint, store), NIX_BUILD_TOP: top } });
  assert.is(result.code, 0, result.stderr);
  const warnings = warningsOf(result.stderr);
  assert.is(warnings.length, 1, result.stderr);
  assert.match(warnings[0]!, warning);
  assert.equal(snapshot(root), before);
  assert.equal(readdirSync(join(top, '.nix-build-cache')).filter((name) => name.startsWith('staging')), []);
}

/** The archive under `store` restores (a hit with the blob). */
async function stillRestores(store: string): Promise<void> {
  const { top, root } = await fresh();
  const result = await runCli(['restore', ...ARGS], { cwd: root, env: { ...env(s3.endpoint, store), NIX_BUILD_TOP: top } });
  assert.match(result.stderr, /restore: hit main/, result.stderr);
}

async function withProxy(rule: Parameters<typeof startProxy>[1], fn: (proxy: Proxy) => Promise<void>): Promise<void> {
  const proxy = await startProxy(s3.port, rule);
  try {
    await fn(proxy);
  } finally {
    await proxy.close();
  }
}

const nextStore = () => `s3://${s3.bucket}/f${++prefix}`;

/** A seeded store and a fresh build whose state dir is a tmpfs of `size`, for `fn`; unmounted after. */
async function withTmpfsStateDir(size: string, fn: (store: string, build: Build) => Promise<void>): Promise<void> {
  const store = nextStore();
  await seed(store);
  const build = await fresh();
  const state = join(build.top, '.nix-build-cache');
  mkdirSync(state);
  await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', state]);
  try {
    await fn(store, build);
  } finally {
    await execFileAsync('umount', [state]);
  }
}

test('ENOSPC while unpacking (a 1 MiB tmpfs under the state dir)', () =>
  withTmpfsStateDir('1m', (store, build) => restoreFailsOpen(s3.endpoint, store, /cache main is unusable.*ENOSPC/, [], build)));

test('a state dir on another file system (tmpfs): artifacts are copied into place instead of renamed', () =>
  withTmpfsStateDir('64m', async (store, build) => {
    const result = await runCli(['restore', ...ARGS], { cwd: build.root, env: { ...env(s3.endpoint, store), NIX_BUILD_TOP: build.top } });
    assert.match(result.stderr, /restore: hit main.*1 artifact restored/, result.stderr);
    assert.ok(readFileSync(join(build.root, 'obj', 'blob.bin')).equals(BLOB));
  }));

test('the process killed during save: the previous archive still restores', async () => {
  const store = nextStore();
  await seed(store);
  const build = await fresh();
  const e = env(s3.endpoint, store);
  await runCli(['restore', ...ARGS], { cwd: build.root, env: { ...e, NIX_BUILD_TOP: build.top } });
  writeFileSync(join(build.root, 'obj', 'big.bin'), randomBytes(24 << 20));
  let kill: () => void = () => {};
  await withProxy((req, _res, forward) => {
    // The first uploaded part is the moment: kill the saver with the upload half done.
    if (req.method === 'PUT' && /partNumber=/.test(req.url ?? '')) kill();
    forward();
  }, async (proxy) => {
    const child = spawn(process.execPath, [CLI, 'save', ...ARGS, '--part-size', '5'], {
      cwd: build.root, env: { PATH: process.env.PATH ?? '', ...env(proxy.endpoint, store), NIX_BUILD_TOP: build.top }, stdio: 'ignore',
    });
    kill = () => child.kill('SIGKILL');
    const signal = await new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    assert.is(signal, 'SIGKILL');
  });
  await stillRestores(store);
});

test('a server that stalls mid-download: the socket timeout ends it', async () => {
  const store = nextStore();
  await seed(store);
  await withProxy((req, _res, forward) => {
    let sent = 0;
    // After 64 KiB of the archive, forward nothing more and keep the connection open.
    forward(isArchive(req) && req.method === 'GET' ? (chunk) => (sent += chunk.length) < 65536 : undefined);
  }, (proxy) => restoreFailsOpen(proxy.endpoint, store, /cache main is unusable.*(TimeoutError|timed out)/, ['--socket-timeout', '1']));
});

test('persistent 500s on the archive: retried, then one warning with the status and a hint', async () => {
  const store = nextStore();
  await seed(store);
  let failures = 0;
  await withProxy((req, res, forward) => {
    if (isArchive(req) && req.method === 'GET') {
      failures++;
      res.writeHead(500, { 'content-type': 'application/xml' }).end('<Error><Code>InternalError</Code><Message>injected</Message></Error>');
    } else forward();
  }, (proxy) => restoreFailsOpen(proxy.endpoint, store, /download s3:\/\/faults\/.* failed \(HTTP 500\): InternalError.*the server failed/));
  assert.is(failures, 3, 'three attempts, the default');
});

test('one 503 is retried and the restore still hits', async () => {
  const store = nextStore();
  await seed(store);
  let first = true;
  await withProxy((req, res, forward) => {
    if (first && isArchive(req) && req.method === 'GET') {
      first = false;
      res.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>SlowDown</Code><Message>injected</Message></Error>');
    } else forward();
  }, async (proxy) => {
    const { top, root } = await fresh();
    const result = await runCli(['restore', ...ARGS], { cwd: root, env: { ...env(proxy.endpoint, store), NIX_BUILD_TOP: top } });
    assert.match(result.stderr, /restore: hit main/);
    assert.not.match(result.stderr, /warning/);
  });
});

test('a 500 when completing the upload: one warning, and the previous archive still restores', async () => {
  const store = nextStore();
  await seed(store);
  const build = await fresh();
  await runCli(['restore', ...ARGS], { cwd: build.root, env: { ...env(s3.endpoint, store), NIX_BUILD_TOP: build.top } });
  writeFileSync(join(build.root, 'obj', 'big.bin'), randomBytes(12 << 20));
  await withProxy((req, res, forward) => {
    if (req.method === 'POST' && /uploadId=/.test(req.url ?? '')) {
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' }).end('<Error><Code>InternalError</Code><Message>injected</Message></Error>');
    } else forward();
  }, async (proxy) => {
    const result = await runCli(['save', ...ARGS, '--part-size', '5'], { cwd: build.root, env: { ...env(proxy.endpoint, store), NIX_BUILD_TOP: build.top } });
    assert.is(result.code, 0);
    const warnings = warningsOf(result.stderr);
    assert.is(warnings.length, 1, result.stderr);
    assert.match(warnings[0]!, /save failed, the build goes on: upload s3:\/\/faults\/.* failed \(HTTP 500\)/);
  });
  await stillRestores(store);
});

test.run();
