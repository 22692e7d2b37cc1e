import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCli, runCommand, tempDir, writeTree } from './helpers.js';

const test = suite('command line errors');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

const lines = (text: string) => text.split('\n').filter(Boolean);

test('an unknown flag is exactly one line, exit 2, no help dump', async () => {
  const result = await runCli(['--bogus'], { cwd: dir });
  assert.is(result.code, 2);
  assert.is(result.stdout, '');
  assert.equal(lines(result.stderr), ["nix-build-cache: unknown option --bogus (run 'nix-build-cache --help')"]);
});

test('a misspelt option or command says which one was meant', async () => {
  const option = await runCli(['restore', '--cach-name', 'x'], { cwd: dir });
  assert.is(option.code, 2);
  assert.equal(lines(option.stderr), ["nix-build-cache restore: unknown option --cach-name; did you mean --cache-name? (run 'nix-build-cache restore --help')"]);
  const command = await runCli(['restor'], { cwd: dir });
  assert.is(command.code, 2);
  assert.equal(lines(command.stderr), ['nix-build-cache: unknown command "restor"; did you mean restore? (run \'nix-build-cache --help\')']);
  const elsewhere = await runCli(['hash', '--store', 'x'], { cwd: dir });
  assert.is(elsewhere.code, 2);
  assert.match(elsewhere.stderr, /^nix-build-cache hash: --store is not an option of hash \(it is one of restore, save, ls, prune, serve, stats\)[^\n]*\n$/);
  const early = await runCli(['--cache-name', 'x', 'restore'], { cwd: dir });
  assert.match(early.stderr, /^nix-build-cache: unknown option --cache-name; options come after the command[^\n]*\n$/);
  const missing = await runCli(['restore', '--store'], { cwd: dir });
  assert.is(missing.code, 2);
  assert.equal(lines(missing.stderr), ["nix-build-cache restore: Option '--store <value>' argument missing (run 'nix-build-cache restore --help')"]);
});

test('missing paths are a clear error and exit 2', async () => {
  const hash = await runCli(['hash', join(dir, 'nonexistent')], { cwd: dir });
  assert.is(hash.code, 2);
  assert.is(hash.stdout, '');
  assert.equal(lines(hash.stderr), [`nix-build-cache hash: DIR: no such directory ${join(dir, 'nonexistent')}`]);
  for (const command of ['restore', 'save', 'settle']) {
    const more = command === 'settle' ? [] : ['--cache-name', 'x', '--store', join(dir, 'store')];
    const result = await runCli([command, '--root', join(dir, 'gone'), '--cache-dir', 'obj', ...more], { cwd: dir });
    assert.is(result.code, 2, command);
    assert.equal(lines(result.stderr), [`nix-build-cache ${command}: --root: no such directory ${join(dir, 'gone')}`], command);
  }
});

test('problems name the flags the user gave, one line each', async () => {
  const result = await runCli(['save', '--cache-name', '', '--cache-dir', '/abs', '--fallback', 'x', '--part-size', '1'], { cwd: dir });
  assert.is(result.code, 2);
  assert.match(result.stderr, /--fallback is not an option of save/);
  const save = await runCli(['save', '--cache-dir', '/abs', '--endpoint', 'ftp://x', '--store', join(dir, 's'), '--part-size', '1'], { cwd: dir });
  assert.is(save.code, 2);
  assert.equal(lines(save.stderr).sort(), [
    'nix-build-cache save: --cache-dir: must be a relative path without ".." (got "/abs")',
    'nix-build-cache save: --cache-name: required (got "")',
    'nix-build-cache save: --endpoint: must be an http(s) URL (got "ftp://x")',
    "nix-build-cache save: --part-size: must be at least 5 (MiB, S3's minimum) (got 1)",
  ]);
});

test('--json - writes the report to stdout and nothing else; the summary stays on stderr', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const args = ['--cache-name', 'j', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', join(dir, 'state'), '--json', '-'];
  const result = await runCli(['restore', ...args, '--explain'], { cwd: root });
  assert.is(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as { command: string; result: string; matchedKey: null };
  assert.is(report.command, 'restore');
  assert.is(report.result, 'miss');
  assert.match(result.stderr, /restore: miss/);
  assert.match(result.stderr, /# tried j, key j\/v2-\w+\.tar\.zst: missing/, 'the explanation went to stderr');
  const ls = await runCli(['ls', '--store', join(dir, 'store'), '--json', '-'], { cwd: root });
  assert.equal(JSON.parse(ls.stdout).caches, []);
});

test('--explain on a miss lists every key tried and why it missed', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a', 'obj/a.o': 'o' });
  const store = join(dir, 'store');
  const state = ['--state-dir', join(dir, 'state')];
  // An archive of "main" made with other settings: the miss says so.
  assert.is((await runCli(['restore', '--cache-name', 'main', '--cache-dir', 'obj', '--store', store, ...state], { cwd: root })).code, 0);
  writeFileSync(join(root, 'obj', 'b.o'), 'b');
  assert.match((await runCli(['save', '--cache-name', 'main', '--cache-dir', 'obj', '--store', store, ...state, '--salt', 'gcc-12'], { cwd: root })).stderr, /saved/);
  const result = await runCli(['restore', '--cache-name', 'feature', '--fallback', 'main', '--cache-dir', 'obj', '--store', store, ...state, '--explain'], { cwd: root });
  assert.is(result.code, 0, result.stderr);
  const tried = lines(result.stdout).filter((line) => line.startsWith('# '));
  assert.is(tried.length, 2);
  assert.match(tried[0]!, /^# tried feature, key feature\/v2-\w+\.tar\.zst: missing, no archive under this key/);
  assert.match(tried[1]!, /^# tried main, key main\/v2-\w+\.tar\.zst: missing, .*salt/);
});

test('save --root finds the restore of that root from any directory', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const env = { TMPDIR: join(dir, 'tmp'), NBC_STORE: join(dir, 'store') };
  mkdirSync(env.TMPDIR);
  const args = ['--cache-name', 'r', '--cache-dir', 'obj'];
  assert.is((await runCli(['restore', ...args, '--root', root], { cwd: dir, env })).code, 0);
  writeTree(join(root, 'obj'), { 'a.o': 'o' });
  const elsewhere = await runCli(['save', ...args], { cwd: dir, env });
  assert.match(elsewhere.stderr, /restore did not run/);
  const saved = await runCli(['save', ...args, '--root', root], { cwd: dir, env });
  assert.match(saved.stderr, /save: saved r, key r\/v2-\w+\.tar\.zst; 1 file/);
});

// A preload that reports, at exit, whether any module of the AWS SDK was loaded (require cache).
const PROBE = `process.on('exit', () => {
  const sdk = Object.keys(require('node:module')._cache).filter((path) => path.includes('@aws-sdk'));
  process.stderr.write('aws-sdk modules: ' + sdk.length + '\\n');
});`;

test('the AWS SDK loads only for S3 stores', async () => {
  const probe = join(dir, 'probe.cjs');
  writeFileSync(probe, PROBE);
  const library = await runCommand(process.execPath, ['--require', probe, '--input-type=module', '-e', `await import(${JSON.stringify(join(CLI, '..', 'index.js'))})`], { cwd: dir });
  assert.match(library.stderr, /aws-sdk modules: 0\n/, library.stderr);
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const args = ['--cache-name', 'l', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', join(dir, 'state')];
  for (const command of ['restore', 'save']) {
    if (command === 'save') writeTree(join(root, 'obj'), { 'a.o': 'o' });
    const run = await runCommand(process.execPath, ['--require', probe, CLI, command, ...args], { cwd: root });
    assert.match(run.stderr, new RegExp(`${command}: (miss|saved)`), run.stderr);
    assert.match(run.stderr, /aws-sdk modules: 0\n/, `${command}: ${run.stderr}`);
  }
  // The probe sees the SDK when it does load.
  const s3 = await runCommand(process.execPath, ['--require', probe, CLI, 'ls', '--store', 's3://bucket', '--endpoint', 'http://127.0.0.1:9',
    '--access-key-id', 'a', '--secret-access-key', 'b', '--max-attempts', '1', '--connect-timeout', '0.5'], { cwd: dir });
  assert.match(s3.stderr, /aws-sdk modules: [1-9]\d*\n/, s3.stderr);
  assert.ok(readFileSync(probe, 'utf8').includes('@aws-sdk'));
});

test.run();
