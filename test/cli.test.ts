import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from './helpers.js';

const test = suite('command line');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

const S3 = ['endpoint', 'region', 'credentials-file', 'profile', 'access-key-id', 'secret-access-key', 'connect-timeout', 'socket-timeout', 'max-attempts'];
const OPTIONS: Record<string, string[]> = {
  restore: ['store', 'cache-name', 'fallback', 'cache-dir', 'state-dir', 'root', 'compression', 'salt', 'lookup-only', 'fail-on-miss', 'explain', ...S3,
    'events', 'threads', 'json', 'strict', 'quiet'],
  save: ['store', 'cache-name', 'cache-dir', 'state-dir', 'root', 'events', 'compression', 'salt', ...S3, 'part-size', 'queue-size', 'threads', 'json', 'strict', 'quiet'],
  hash: ['threads', 'json', 'quiet'],
  ls: ['store', ...S3, 'json', 'quiet'],
  prune: ['store', ...S3, 'older-than', 'max-size', 'keep', 'dry-run', 'json', 'quiet'],
  stats: ['store', 'cache-name', 'events', 'since', 'json', 'quiet'],
};

test('--help of every command lists every option with its default', async () => {
  for (const [command, options] of Object.entries(OPTIONS)) {
    const { code, stdout } = await runCli([command, '--help'], { cwd: dir });
    assert.is(code, 0);
    for (const option of options) assert.match(stdout, new RegExp(`^  --${option}\\b.*\\[default: [^\\]]+`, 'm'), `${command} --${option}`);
  }
  const top = await runCli(['--help'], { cwd: dir });
  assert.match(top.stdout, /restore[\s\S]*save[\s\S]*hash[\s\S]*ls[\s\S]*prune[\s\S]*stats/);
});

test('--version prints the package version', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.is((await runCli(['--version'], { cwd: dir })).stdout, `${version}\n`);
});

test('invalid options exit 2 and list every problem by field', async () => {
  const result = await runCli(['restore', '--cache-name', 'bad name', '--cache-dir', '../up', '--threads', 'x'], { cwd: dir });
  assert.is(result.code, 2);
  assert.match(result.stderr, /--cache-name: use letters.*\(got "bad name"\)/);
  assert.match(result.stderr, /--cache-dir: must be a relative path without "\.\." \(got "\.\.\/up"\)/);
  assert.match(result.stderr, /--threads: must be a positive number \(got "x"\)/);
  const unknown = await runCli(['save', '--bogus'], { cwd: dir });
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option --bogus/);
});

test('options come from NBC_* variables when not on the command line', async () => {
  writeTree(join(dir, 'src'), { 'a.c': 'a' });
  const env = { NBC_STORE: join(dir, 'store'), NBC_CACHE_NAME: 'env-name', NBC_CACHE_DIRS: 'obj', NBC_FALLBACKS: 'one,two', NBC_STATE_DIR: join(dir, 'state') };
  const result = await runCli(['restore'], { cwd: join(dir, 'src'), env });
  assert.is(result.code, 0, result.stderr);
  // The store directory does not exist yet: each miss says so (in a sandbox, the usual cause).
  const absent = `missing, the store directory ${join(dir, 'store')} does not exist \\(in a sandboxed build: is it in extra-sandbox-paths\\?\\)`;
  assert.match(result.stderr, new RegExp(`miss \\(tried env-name: ${absent}; one: ${absent}; two: ${absent}\\)`));
});

test('save without a restore in this build skips with a clear message and exit 0', async () => {
  const result = await runCli(['save', '--cache-name', 'x', '--cache-dir', 'obj', '--store', join(dir, 'store')], { cwd: dir });
  assert.is(result.code, 0);
  assert.match(result.stderr, /warning: not saving: restore did not run in this build/);
});

test('an unwritable store is a warning and exit 0; with --strict exit 1', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a', 'obj/a.o': 'o' });
  const store = join(dir, 'store');
  mkdirSync(store);
  writeFileSync(join(store, 'x'), 'a file where the cache name needs a directory');
  const args = ['--cache-name', 'x', '--cache-dir', 'obj', '--store', store, '--state-dir', join(dir, 'state')];
  assert.is((await runCli(['restore', ...args], { cwd: root })).code, 0);
  writeFileSync(join(root, 'obj/b.o'), 'artifact');
  const result = await runCli(['save', ...args], { cwd: root });
  assert.is(result.code, 0);
  assert.match(result.stderr, /warning: save failed, the build goes on: write .*x\/v2-.* failed/);
  const strict = await runCli(['save', ...args, '--strict'], { cwd: root });
  assert.is(strict.code, 1);
  assert.match(strict.stderr, /error: write/);
});

test('--json writes the report; --quiet drops the summary line', async () => {
  writeTree(join(dir, 'src'), { 'a.c': 'a' });
  const json = join(dir, 'report.json');
  const result = await runCli(['restore', '--cache-name', 'q', '--cache-dir', 'obj', '--store', join(dir, 'store'),
    '--state-dir', join(dir, 'state'), '--json', json, '--quiet'], { cwd: join(dir, 'src') });
  assert.is(result.stderr, '');
  const report = JSON.parse(readFileSync(json, 'utf8')) as { command: string; outcome: string; sources: { files: number } };
  assert.is(report.command, 'restore');
  assert.is(report.outcome, 'miss');
  assert.is(report.sources.files, 1);
});

test('the state dir is private to the user', async () => {
  writeTree(join(dir, 'src'), { 'a.c': 'a' });
  const state = join(dir, 'state');
  await runCli(['restore', '--cache-name', 'p', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', state], { cwd: join(dir, 'src') });
  assert.equal(readdirSync(state).sort(), ['MD5SUMS', 'state.json']);
  assert.is(statSync(state).mode & 0o077, 0, 'no access for group or others');
});

test('save finds the restore of the source root from a directory below it (configurePhase did cd build)', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a', 'build/keep': 'k' });
  const env = { TMPDIR: join(dir, 'tmp'), NBC_STORE: join(dir, 'store') };
  mkdirSync(env.TMPDIR);
  const args = ['--cache-name', 'cd', '--cache-dir', 'build'];
  assert.is((await runCli(['restore', ...args], { cwd: root, env })).code, 0);
  writeFileSync(join(root, 'build', 'out.o'), 'object');
  const saved = await runCli(['save', ...args], { cwd: join(root, 'build'), env });
  assert.match(saved.stderr, /save: saved cd, key cd\/v2-\w+\.tar\.zst; 1 file, /);
  assert.is(readdirSync(env.TMPDIR).length, 1, 'one state dir, in $TMPDIR');
});

test('ls and prune work on the local store too', async () => {
  const store = join(dir, 'store');
  for (const name of ['one', 'two/nested']) {
    const root = join(dir, name.replace('/', '-'));
    writeTree(root, { 'a.c': 'a' });
    const args = ['--cache-name', name, '--cache-dir', 'obj', '--store', store, '--state-dir', join(root, '..', `${name.replace('/', '-')}.state`)];
    await runCli(['restore', ...args], { cwd: root });
    writeTree(join(root, 'obj'), { 'a.o': name });
    assert.match((await runCli(['save', ...args], { cwd: root })).stderr, /save: saved/);
  }
  const ls = await runCli(['ls', '--store', store], { cwd: dir });
  assert.match(ls.stdout, /^NAME +SIZE +AGE +KEY\none +0\.0 MB +0m +one\/v2-\w+\.tar\.zst\ntwo\/nested +.* two\/nested\/v2-\w+\.tar\.zst\n$/);
  assert.match(ls.stderr, /ls: 2 archives/);
  const dry = await runCli(['prune', '--store', store, '--older-than', '0s', '--dry-run', '--json', join(dir, 'prune.json')], { cwd: dir });
  assert.match(dry.stdout, /would delete +one .*\nwould delete +two\/nested /);
  assert.is(JSON.parse(readFileSync(join(dir, 'prune.json'), 'utf8')).deleted.length, 2);
  assert.match((await runCli(['prune', '--store', store, '--older-than', '0s'], { cwd: dir })).stdout, /deleted +one[\s\S]*deleted +two\/nested/);
  assert.is((await runCli(['ls', '--store', store], { cwd: dir })).stdout, '');
  const bad = await runCli(['prune', '--store', store, '--older-than', 'soon'], { cwd: dir });
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--older-than: use a number and s, m, h, d or w \(got "soon"\)/);
});

test.run();
