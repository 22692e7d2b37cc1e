import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { copyCheckout, REPO } from './checkout.js';
import { runCommand, tempDir, writeTree } from './helpers.js';
import { startRegistry, type TestRegistry } from './npm-registry.js';

// A user's install: `npm pack`, then `npm install -g` of the tarball into a fresh prefix, and the
// CLI run from that prefix's bin on PATH, away from the checkout; and a fresh checkout built and
// linked. Dependencies come from a registry on 127.0.0.1 that serves the locked packages out of
// the npm cache `npm ci` filled.
const NODE_PREFIX = dirname(dirname(process.execPath));
const test = suite('installing: npm install -g of the packed tarball, and a checkout; nix-build-cache on PATH');
let work: string;
let remove: () => Promise<void>;
let registry: TestRegistry;
let tarball: string;

test.before(async () => {
  ({ dir: work, remove } = await tempDir('nbc-install-'));
  registry = await startRegistry(join(REPO, 'package-lock.json'), process.env.npm_config_cache ?? join(homedir(), '.npm'));
  const packed = await runCommand('npm', ['pack', '--json', '--pack-destination', work], { cwd: REPO, env: { HOME: work } });
  assert.is(packed.code, 0, packed.stderr);
  tarball = join(work, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
});
test.after(async () => {
  await registry.close();
  await remove();
});

/** npm with the test registry, a fresh cache and no user configuration (so no nodedir: the install finds Node's headers). */
async function npm(args: string[], cwd: string, env: Record<string, string> = {}) {
  const result = await runCommand('npm', [...args, '--registry', registry.url, '--cache', join(work, 'npm-cache'),
    '--no-audit', '--no-fund', '--foreground-scripts'], { cwd, env: { HOME: work, ...env } });
  assert.is(result.code, 0, `npm ${args.join(' ')}: ${result.stdout}${result.stderr}`);
  return result;
}

/** `npm install -g` of the tarball into a new prefix. */
async function install(prefix: string, env: Record<string, string> = {}) {
  const result = await npm(['install', '-g', tarball, '--prefix', join(work, prefix)], work, env);
  return { ...result, bin: join(work, prefix, 'bin'), lib: join(work, prefix, 'lib/node_modules/nix-build-cache') };
}

/** Runs the installed CLI by name from PATH (its bin, then the system's for node and zstd). */
function cli(bin: string, args: string[], cwd: string) {
  return runCommand('nix-build-cache', args, { cwd, env: { PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`, HOME: work } });
}

function version(): string {
  return (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
}

function report(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
}

// The native hasher is used only on CPUs with AVX2 (workers/hasher.ts).
const avx2 = /\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

test("the SIMD hasher and the zstd addon are built with the headers beside node (offline); --version and a save → restore round trip run from PATH", async () => {
  assert.ok(existsSync(join(NODE_PREFIX, 'include/node/node_version.h')), `no Node headers under ${NODE_PREFIX}`);
  const { bin, lib } = await install('with-headers');
  assert.ok(existsSync(join(lib, 'build/Release/nbc_md5.node')), 'the native hasher was built');
  assert.ok(existsSync(join(lib, 'build/Release/nbc_zstd.node')), 'the zstd addon was built');

  assert.is((await cli(bin, ['--version'], work)).stdout, `${version()}\n`);

  const store = join(work, 'store');
  const common = ['--store', store, '--cache-name', 'demo', '--cache-dir', 'obj'];
  const first = join(work, 'first');
  writeTree(first, { 'a.c': 'int a;' });
  assert.is((await cli(bin, ['restore', ...common, '--state-dir', join(work, 'state-1')], first)).code, 0);
  writeTree(join(first, 'obj'), { 'a.o': 'object code' });
  const saved = await cli(bin, ['save', ...common, '--state-dir', join(work, 'state-1')], first);
  assert.is(saved.code, 0, saved.stderr);

  const second = join(work, 'second');
  writeTree(second, { 'a.c': 'int a;' });
  const restored = await cli(bin, ['restore', ...common, '--state-dir', join(work, 'state-2')], second);
  assert.is(restored.code, 0, restored.stderr);
  assert.is(readFileSync(join(second, 'obj/a.o'), 'utf8'), 'object code');

  assert.is((await cli(bin, ['hash', '.', '--json', join(work, 'hash.json')], second)).code, 0);
  assert.is(report(join(work, 'hash.json')).hasher, avx2 ? 'simd' : 'crypto');
});

test('with no headers where nodedir says: the install still succeeds, and hashing uses node:crypto', async () => {
  const none = join(work, 'no-headers');
  mkdirSync(none);
  const { bin, lib, stdout } = await install('without-headers', { npm_config_nodedir: none });
  assert.match(stdout, 'the native addons did not build');
  assert.not.ok(existsSync(join(lib, 'build/Release/nbc_md5.node')));
  const hashed = await cli(bin, ['hash', '.', '--json', join(work, 'hash.json')], lib);
  assert.is(hashed.code, 0, hashed.stderr);
  assert.is(report(join(work, 'hash.json')).hasher, 'crypto');
});

test('from a checkout: npm ci, npm run build, node dist/src/cli.js; npm link puts it on PATH', async () => {
  const checkout = join(work, 'checkout');
  await copyCheckout(checkout);
  await npm(['ci'], checkout);
  assert.ok(existsSync(join(checkout, 'build/Release/nbc_md5.node')), 'npm ci built the native hasher');
  await npm(['run', 'build'], checkout);
  const direct = await runCommand(process.execPath, [join(checkout, 'dist/src/cli.js'), '--version'], { cwd: work });
  assert.is(direct.stdout, `${version()}\n`, direct.stderr);
  // npm link is global-only: its prefix comes from the configuration, not --prefix (the project's).
  await npm(['link'], checkout, { npm_config_prefix: join(work, 'linked') });
  assert.is((await cli(join(work, 'linked/bin'), ['--version'], work)).stdout, `${version()}\n`);
});

test.run();
