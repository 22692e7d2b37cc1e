import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, parseMakeOutput, unitName } from '../bench/c-project.js';
import { CLI, runCommand, tempDir, writeTree, type CliResult } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

const PROJECT = fileURLToPath(new URL('../../test/nix/project.nix', import.meta.url));
const SECRET = 'nbc-NIX-secret-31c4f2a9';
// As NIX-NOTES says: no sandbox (the builder reaches 127.0.0.1 and host tools), build as root, no substituters.
const NIX_CONFIG = 'sandbox = false\nbuild-users-group =\nsubstituters =';

const test = suite('the Nix wrapper under real nix-build');
let s3: TestS3;
let work: string;
let remove: () => Promise<void>;
const logs: string[] = [];
let run = 0;

test.before(async () => {
  s3 = await startS3('nix-cache');
  ({ dir: work, remove } = await tempDir('nbc-nix-'));
});
test.after(async () => {
  await s3.close();
  await remove();
});

interface NixResult {
  run: number;
  code: number;
  out: string;
  log: string;
  compiled: string[];
  linked: boolean;
}

function nix(command: string, args: string[]): Promise<CliResult> {
  return runCommand(command, args, { env: { NIX_CONFIG, HOME: work } });
}

/** Sources in a fresh directory (a new `src` store path), as a new commit would bring. */
async function sources(files: Record<string, string>, under = ''): Promise<string> {
  const dir = await mkdtemp(join(work, 'src-'));
  writeTree(join(dir, under), files);
  return dir;
}

interface BuildArgs {
  src: string;
  shape?: string;
  cache?: Record<string, unknown>;
  wrap?: boolean;
  toolchainTag?: string;
  /** Rebuild with `nix-build --check` (give the `run` of the build to check). */
  check?: boolean;
  run?: number;
}

function cacheArgs(cache: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'cache-name': 'main', 'master-cache': 'main', 'cache-dirs': ['obj'], 's3-bucket': s3.bucket, 's3-prefix': 'default',
    's3-endpoint': s3.endpoint, 'aws-key': ACCESS_KEY_ID, 'aws-secret': SECRET, cli: `${process.execPath} ${CLI}`, ...cache,
  };
}

function nixArgs(args: BuildArgs & { run: number }): string[] {
  return [PROJECT, '--argstr', 'src', args.src, '--argstr', 'shape', args.shape ?? 'plain', '--argstr', 'run', String(args.run),
    '--argstr', 'cacheArgs', JSON.stringify(cacheArgs(args.cache)), ...(args.wrap === false ? ['--arg', 'wrap', 'false'] : []),
    ...(args.toolchainTag ? ['--argstr', 'toolchainTag', args.toolchainTag] : [])];
}

async function build(args: BuildArgs): Promise<NixResult> {
  const thisRun = args.run ?? ++run;
  const result = await nix('nix-build', ['--no-out-link', ...(args.check ? ['--check'] : []), ...nixArgs({ ...args, run: thisRun })]);
  logs.push(result.stdout, result.stderr);
  return { run: thisRun, code: result.code, out: result.stdout.trim(), log: result.stderr, ...parseMakeOutput(result.stderr) };
}

async function built(args: BuildArgs): Promise<NixResult> {
  const result = await build(args);
  assert.is(result.code, 0, result.log.slice(-3000));
  return result;
}

const UNITS = 6;
const ALL = ['main.c', ...Array.from({ length: UNITS }, (_, i) => `${unitName(i + 1)}.c`)].sort();
const edit = (files: Record<string, string>, unit: number) =>
  ({ ...files, [`${unitName(unit)}.c`]: `${files[`${unitName(unit)}.c`]}/* edited */\n` });

test('cold build equals the unwrapped one; one changed .c recompiles exactly it; --check passes', async () => {
  const files = cProject({ units: UNITS });
  const cache = { 's3-prefix': 'basic' };
  const v1 = await sources(files);
  const plain = await built({ src: v1, wrap: false });
  const cold = await built({ src: v1, cache });
  assert.equal(cold.compiled, ALL);
  assert.ok(readFileSync(join(cold.out, 'bin/prog')).equals(readFileSync(join(plain.out, 'bin/prog'))));
  const v2 = await sources(edit(files, 2));
  const warm = await built({ src: v2, cache });
  assert.equal(warm.compiled, [`${unitName(2)}.c`]);
  assert.ok(warm.linked);
  assert.match(warm.log, /restore: hit main/);
  assert.match(warm.log, /nix-build-cache settle: \d+ of \d+ rewritten files? had the saved content and got the restored time back; \d+ files? restored/,
    'settle ran in postConfigure');
  const clean = await built({ src: v2, wrap: false });
  assert.ok(readFileSync(join(warm.out, 'bin/prog')).equals(readFileSync(join(clean.out, 'bin/prog'))));
  const checked = await built({ src: v2, cache, check: true, run: warm.run });
  assert.equal(checked.compiled, []);
  assert.not.ok(checked.linked);
});

test('a pull request falls back to master-cache, then builds from its own cache', async () => {
  const files = cProject({ units: UNITS });
  await built({ src: await sources(files), cache: { 's3-prefix': 'pr', 'cache-name': 'repo/main', 'master-cache': 'repo/main' } });
  const pr = { 's3-prefix': 'pr', 'cache-name': 'repo/pr-7', 'master-cache': 'repo/main' };
  const src = await sources(edit(files, 4));
  const first = await built({ src, cache: pr });
  assert.equal(first.compiled, [`${unitName(4)}.c`]);
  assert.match(first.log, /restore: hit repo\/main \(fallback\)/);
  const second = await built({ src, cache: pr });
  assert.equal(second.compiled, []);
  assert.match(second.log, /restore: hit repo\/pr-7,/);
});

test('another toolchain is a clean miss, and the log says why', async () => {
  const files = cProject({ units: UNITS });
  const cache = { 's3-prefix': 'toolchain' };
  await built({ src: await sources(files), cache });
  const other = await built({ src: await sources(files), cache, toolchainTag: 'gcc-next' });
  assert.equal(other.compiled, ALL);
  assert.match(other.log, /restore: miss \(tried main: missing, archives of this name exist for another toolchain salt/);
});

test('save-on-failure leaves a restorable cache after buildPhase fails', async () => {
  const files = cProject({ units: UNITS });
  const cache = { 's3-prefix': 'failure', 'save-on-failure': true };
  const broken = { ...files, [`${unitName(4)}.c`]: 'this is not C\n' };
  const failed = await build({ src: await sources(broken), cache });
  assert.is.not(failed.code, 0);
  assert.match(failed.log, /save: saved main \(from a failed build\)/);
  const fixed = await built({ src: await sources(files), cache });
  assert.equal(fixed.compiled, [4, 5, 6].map((i) => `${unitName(i)}.c`), 'what the failed build got to is reused');
});

const SHAPES: Record<string, { cacheDirs?: string[]; objdir?: string; under?: string }> = {
  structured: {},
  finalAttrs: {},
  overridden: {},
  customConfigure: {},
  cdBuild: { cacheDirs: ['build'], objdir: '.' },
  sourceRoot: { under: 'sub' },
  postPatch: {},
  inTree: { cacheDirs: ['.'], objdir: '.' },
};

for (const [shape, setup] of Object.entries(SHAPES)) {
  test(`shape ${shape}: cold compiles everything, warm exactly the changed file`, async () => {
    const files = cProject({ units: UNITS, objdir: setup.objdir ?? 'obj' });
    const cache = { 's3-prefix': `shape-${shape}`, 'cache-dirs': setup.cacheDirs ?? ['obj'] };
    const cold = await built({ src: await sources(files, setup.under), shape, cache });
    assert.equal(cold.compiled, ALL);
    const warm = await built({ src: await sources(edit(files, 3), setup.under), shape, cache });
    assert.equal(warm.compiled, [`${unitName(3)}.c`], warm.log.slice(-2000));
    assert.ok(warm.linked);
    if (shape === 'overridden') assert.is(readFileSync(join(warm.out, 'marker'), 'utf8'), 'overridden\n');
  });
}

test('a derivation that never runs preConfigure builds correctly (and saves nothing)', async () => {
  const files = cProject({ units: UNITS });
  const cache = { 's3-prefix': 'no-configure' };
  for (const src of [await sources(files), await sources(edit(files, 1))]) {
    const result = await built({ src, shape: 'noConfigure', cache });
    assert.equal(result.compiled, ALL);
    assert.match(result.log, /not saving: restore did not run in this build/);
  }
});

test('backend unreachable: the build succeeds and compiles everything', async () => {
  const result = await built({ src: await sources(cProject({ units: UNITS })), cache: { 's3-endpoint': 'http://127.0.0.1:9', 's3-prefix': 'dead' } });
  assert.equal(result.compiled, ALL);
  assert.match(result.log, /warning: cache main is unusable.*ECONNREFUSED/);
});

test('the secret is in no build log, not in the environment of later phases, and (credentials file) not in the .drv', async () => {
  const files = cProject({ units: UNITS });
  const dumped = await built({ src: await sources(files), shape: 'envDump', cache: { 's3-prefix': 'secrets' } });
  assert.not.ok(readFileSync(join(dumped.out, 'environment'), 'utf8').includes(SECRET));
  const credentials = join(work, 'credentials');
  writeFileSync(credentials, `${ACCESS_KEY_ID}\n${SECRET}\n`, { mode: 0o600 });
  const withFile = { 's3-prefix': 'secrets', 'aws-key': null, 'aws-secret': null, 'aws-credentials-file': credentials };
  const src = await sources(edit(files, 1));
  const { stdout } = await nix('nix-instantiate', nixArgs({ src, shape: 'envDump', cache: withFile, run: 0 }));
  assert.not.ok(readFileSync(stdout.trim()).includes(SECRET), 'secret in the .drv');
  const result = await built({ src, shape: 'envDump', cache: withFile });
  assert.equal(result.compiled, [`${unitName(1)}.c`]);
  for (const log of logs) assert.not.ok(log.includes(SECRET), 'secret in a build log');
});

test.run();
