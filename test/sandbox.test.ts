import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, parseMakeOutput, unitName } from '../bench/c-project.js';
import { startDaemon } from './daemon-process.js';
import { CLI, runCommand, tempDir, writeTree } from './helpers.js';
import { startS3 } from './s3-server.js';

// Real sandboxed nix-build (Nix 2.8, as root, no daemon) of the Nix tests' C project, wrapped with a
// local directory store shared by the build users: builds run as nixbld<N> (uid 1000 inside the
// sandbox), see only the host paths listed below, with /build as build directory and no network.
const PROJECT = fileURLToPath(new URL('../../test/nix/sandbox.nix', import.meta.url));
const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const GROUP = 'nixbld';
// Host tools for the stand-in's symlinked toolchain, node and its libraries; the checkout (the CLI).
const SANDBOX_PATHS = '/usr /bin=/usr/bin /lib=/usr/lib /lib64=/usr/lib64';
// Credential-looking variables in nix-build's own environment must not reach the build.
const HOST_SECRETS = { AWS_ACCESS_KEY_ID: 'AKIA-nbc-sandbox', AWS_SECRET_ACCESS_KEY: 'nbc-sandbox-secret', GITHUB_TOKEN: 'nbc-sandbox-token' };
const DAEMON_SECRET = 'nbc-sandbox-daemon-secret-5c2a';

const test = suite('the Nix wrapper in the Nix sandbox, as different build users');
let work: string;
let remove: () => Promise<void>;
let run = 0;

/** nixbld and nixbld1..10 if missing, as Debian's nix-setup-systemd postinst makes them (present on this machine). */
function ensureBuildUsers(): void {
  execFileSync('groupadd', ['--force', '--system', GROUP]);
  for (let i = 1; i <= 10; i++) {
    try {
      execFileSync('id', [`${GROUP}${i}`], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--system', '--comment', `Nix build user ${i}`, '--home-dir', '/var/empty', '--gid', GROUP,
        '--groups', GROUP, '--no-user-group', '--shell', '/usr/sbin/nologin', `${GROUP}${i}`]);
    }
  }
}

/** A store directory set up as the README says for many build users. */
function sharedStore(path: string): string {
  execFileSync('install', ['-d', '-m', '2775', '-o', 'root', '-g', GROUP, path]);
  return path;
}

test.before(async () => {
  assert.is(process.getuid?.(), 0, 'sandboxed builds without a daemon need root');
  ensureBuildUsers();
  ({ dir: work, remove } = await tempDir('nbc-sandbox-'));
});
test.after(async () => { await remove(); });

function options(extraSandboxPaths: string[]): string[] {
  return ['--option', 'sandbox', 'true', '--option', 'sandbox-fallback', 'false', '--option', 'build-users-group', GROUP,
    '--option', 'sandbox-paths', SANDBOX_PATHS, '--option', 'extra-sandbox-paths', extraSandboxPaths.join(' '),
    '--option', 'substituters', ''];
}

const nixEnv = () => ({ HOME: work, NIX_CONFIG: '', ...HOST_SECRETS });

interface Build {
  code: number;
  out: string;
  log: string;
  compiled: string[];
  linked: boolean;
  /** The host uid the build ran as. */
  uid: number;
  environment: string[];
}

function buildUser(log: string): number {
  const map = /^nbc-sandbox: build user\s+(\d+)\s+(\d+)\s+1\s*$/m.exec(log);
  assert.ok(map, `no build user in the log:\n${log.slice(-2000)}`);
  return Number(map[2]);
}

async function build(src: string, store: string, opts: { wrap?: boolean; extraSandboxPaths?: string[]; extraArgs?: string[] } = {}): Promise<Build> {
  const cacheArgs = {
    'cache-name': 'main', 'master-cache': 'main', 'cache-dirs': ['obj'], store, cli: `${process.execPath} ${CLI}`,
    ...(opts.extraArgs ? { 'extra-args': opts.extraArgs } : {}),
  };
  const args = ['--no-out-link', PROJECT, '--argstr', 'src', src, '--argstr', 'run', `sandbox-${process.pid}-${++run}`,
    '--argstr', 'cacheArgs', JSON.stringify(cacheArgs), ...(opts.wrap === false ? ['--arg', 'wrap', 'false'] : []),
    ...options(opts.extraSandboxPaths ?? [store, CHECKOUT])];
  const result = await runCommand('nix-build', args, { env: nixEnv() });
  assert.is(result.code, 0, result.stderr.slice(-3000));
  const log = result.stderr;
  const env = /^nbc-sandbox: environment begin\n([\s\S]*?)^nbc-sandbox: environment end$/m.exec(log);
  assert.ok(env, 'no environment in the log');
  return { code: result.code, out: result.stdout.trim(), log, ...parseMakeOutput(log), uid: buildUser(log), environment: env[1]!.split('\n') };
}

/** A build that holds a build user until release(): the next build cannot get that user. */
async function holdBuildUser(): Promise<{ uid: number; release: () => Promise<void> }> {
  const control = await mkdtemp(join(work, 'hold-'));
  execFileSync('chmod', ['755', control]);
  const fifo = join(control, 'fifo');
  execFileSync('mkfifo', ['-m', '0666', fifo]);
  const child = spawn('nix-build', ['--no-out-link', PROJECT, '--argstr', 'hold', fifo, '--argstr', 'run', `hold-${process.pid}-${++run}`,
    ...options([control])], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...nixEnv() }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const holding = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => { log += chunk.toString(); if (log.includes('nbc-sandbox: holding')) resolve(); });
    done.then((code) => reject(new Error(`the holding build ended (${code}) before holding:\n${log}`)));
  });
  await holding;
  return {
    uid: buildUser(log),
    release: async () => {
      await writeFile(fifo, 'released\n');
      assert.is(await done, 0, log);
    },
  };
}

async function sources(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(work, 'src-'));
  writeTree(dir, files);
  return dir;
}

const UNITS = 6;
const ALL = ['main.c', ...Array.from({ length: UNITS }, (_, i) => `${unitName(i + 1)}.c`)].sort();
const edit = (files: Record<string, string>, unit: number) =>
  ({ ...files, [`${unitName(unit)}.c`]: `${files[`${unitName(unit)}.c`]}/* edited */\n` });
const prog = (build: Build) => readFileSync(join(build.out, 'bin/prog'));
// At the start of a line: the environment dump holds the hook texts with their `|| echo "… failed"`.
const CACHE_TROUBLE = /^nix-build-cache: warning|^nix-build-cache: \w+ failed|^nix-build-cache \w+: error/m;

function assertCleanEnvironment(build: Build): void {
  const names = build.environment.map((line) => line.split('=')[0]!).filter(Boolean);
  assert.ok(names.includes('NIX_BUILD_TOP'), 'the environment dump is there');
  const suspicious = names.filter((name) => /^AWS_|SECRET|TOKEN|PASSWORD|CREDENTIAL/i.test(name));
  assert.equal(suspicious, [], 'credential-looking variables in the build environment');
  for (const value of Object.values(HOST_SECRETS)) assert.not.ok(build.log.includes(value), 'a host secret reached the build');
}

test('cold, warm (another build user, one edit), no-op: exact compile sets, outputs equal a clean build', async () => {
  const store = sharedStore(join(work, 'store'));
  const files = cProject({ units: UNITS });
  const v1 = await sources(files);
  const cold = await build(v1, store);
  assert.equal(cold.compiled, ALL);
  assert.ok(cold.linked);
  assert.not.match(cold.log, CACHE_TROUBLE, cold.log.slice(-3000));
  assert.match(cold.log, /nix-build-cache save: saved main/);
  assert.ok(prog(cold).equals(prog(await build(v1, store, { wrap: false }))), 'cold output differs from an unwrapped build');
  assertCleanEnvironment(cold);

  const v2 = await sources(edit(files, 2));
  // While cold's build user is busy, the warm build must run as another one.
  const hold = await holdBuildUser();
  let warm: Build;
  try {
    warm = await build(v2, store);
  } finally {
    await hold.release();
  }
  assert.is(hold.uid, cold.uid, 'the holding build got the build user the cold build had (Nix takes the first free one)');
  assert.is.not(warm.uid, cold.uid, 'the warm build ran as the same build user as the cold one');
  assert.match(warm.log, /restore: hit main/);
  assert.equal(warm.compiled, [`${unitName(2)}.c`], warm.log.slice(-3000));
  assert.ok(warm.linked);
  assert.not.match(warm.log, CACHE_TROUBLE, warm.log.slice(-3000));
  assert.match(warm.log, /nix-build-cache save: saved main/);
  assert.ok(prog(warm).equals(prog(await build(v2, store, { wrap: false }))), 'warm output differs from an unwrapped build');
  assertCleanEnvironment(warm);

  // Unchanged sources (a new drv): nothing to compile, nothing to link.
  const noop = await build(await sources(edit(files, 2)), store);
  assert.match(noop.log, /restore: hit main/);
  assert.equal(noop.compiled, []);
  assert.not.ok(noop.linked);
  assert.not.match(noop.log, CACHE_TROUBLE, noop.log.slice(-3000));
  assert.ok(prog(noop).equals(prog(warm)));
});

test('the blob layout in the sandbox: cold, warm after one edit, no-op; outputs equal a clean build', async () => {
  const store = sharedStore(join(work, 'store-blobs'));
  const files = cProject({ units: UNITS });
  const blobs = { extraArgs: ['--layout', 'blobs'] };
  const cold = await build(await sources(files), store, blobs);
  assert.equal(cold.compiled, ALL);
  assert.not.match(cold.log, CACHE_TROUBLE, cold.log.slice(-3000));
  assert.match(cold.log, /nix-build-cache save: saved main/);
  assert.ok(readdirSync(join(store, 'blobs/packs')).length > 0, 'no pack in the store');
  assert.ok(readdirSync(join(store, 'main')).some((name) => name.endsWith('.blobs')), 'no blob manifest in the store');

  const v2 = await sources(edit(files, 3));
  const warm = await build(v2, store, blobs);
  assert.match(warm.log, /restore: hit main/);
  assert.equal(warm.compiled, [`${unitName(3)}.c`], warm.log.slice(-3000));
  assert.not.match(warm.log, CACHE_TROUBLE, warm.log.slice(-3000));
  assert.ok(prog(warm).equals(prog(await build(v2, store, { wrap: false }))), 'warm output differs from an unwrapped build');

  const noop = await build(await sources(edit(files, 3)), store, blobs);
  assert.match(noop.log, /restore: hit main/);
  assert.equal(noop.compiled, []);
  assert.not.ok(noop.linked);
  assert.not.match(noop.log, CACHE_TROUBLE, noop.log.slice(-3000));
});

test('a store directory missing from the sandbox: a warning, and a full build that succeeds', async () => {
  const files = cProject({ units: UNITS });
  // Outside /tmp: the sandbox has a writable /tmp of its own, where a save would vanish silently.
  const parent = '/var/tmp';
  mkdirSync(parent, { recursive: true });
  const hidden = sharedStore(await mkdtemp(join(parent, 'nbc-sandbox-store-')));
  try {
    const unlisted = await build(await sources(files), hidden, { extraSandboxPaths: [CHECKOUT] });
    assert.equal(unlisted.compiled, ALL);
    assert.match(unlisted.log, /restore: miss \(tried main: missing, the store directory \S+ does not exist \(in a sandboxed build: is it in extra-sandbox-paths\?\)/);
    assert.match(unlisted.log, /nix-build-cache: warning: save failed.*install -d -m 2775 -o root -g nixbld DIR/);
    assertCleanEnvironment(unlisted);
    const missing = join(hidden, 'missing');
    const optional = await build(await sources(edit(files, 5)), missing, { extraSandboxPaths: [`${missing}?`, CHECKOUT] });
    assert.equal(optional.compiled, ALL);
    assert.match(optional.log, /nix-build-cache: warning: save failed/);
  } finally {
    execFileSync('rm', ['-rf', hidden]);
  }
});

test('S3 through the host daemon: exact warm build inside the sandbox, no credentials in it; the daemon stopped, the build still succeeds', async () => {
  const s3 = await startS3('nbc-sandbox');
  const daemonDir = await mkdtemp(join(work, 'daemon-'));
  execFileSync('chmod', ['755', daemonDir]);
  const daemon = await startDaemon(daemonDir, s3, DAEMON_SECRET);
  try {
    const store = `unix://${daemon.socket}`;
    // The socket's directory, not the socket: a restarted daemon's new socket stays visible.
    const visible = [join(daemonDir, 'run'), CHECKOUT];
    const files = cProject({ units: UNITS });
    const cold = await build(await sources(files), store, { extraSandboxPaths: visible });
    assert.equal(cold.compiled, ALL);
    assert.match(cold.log, /nix-build-cache save: saved main/);
    assert.not.match(cold.log, CACHE_TROUBLE, cold.log.slice(-3000));
    const v2 = edit(files, 3);
    const warm = await build(await sources(v2), store, { extraSandboxPaths: visible });
    assert.match(warm.log, /restore: hit main/);
    assert.equal(warm.compiled, [`${unitName(3)}.c`]);
    assert.not.match(warm.log, CACHE_TROUBLE, warm.log.slice(-3000));
    assert.ok(prog(warm).equals(prog(await build(await sources(v2), store, { wrap: false, extraSandboxPaths: visible }))));
    const noop = await build(await sources(v2), store, { extraSandboxPaths: visible });
    assert.match(noop.log, /restore: hit main/);
    assert.equal(noop.compiled, []);
    assert.not.ok(noop.linked);
    assert.ok(prog(noop).equals(prog(warm)));
    for (const each of [cold, warm, noop]) {
      assertCleanEnvironment(each);
      assert.not.ok(each.log.includes(DAEMON_SECRET), 'the daemon\'s secret reached the build');
    }
    assert.match(daemon.log.join('\n'), /PUT main\/\S+ 201 /);
    await daemon.stop();
    const down = await build(await sources(edit(files, 4)), store, { extraSandboxPaths: visible });
    assert.equal(down.compiled, ALL);
    assert.match(down.log, /nix-build-cache: warning: .*is nix-build-cache serve running/);
  } finally {
    await daemon.stop();
    await s3.close();
  }
});

test.run();
