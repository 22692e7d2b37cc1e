// Issue #15, item 4: dead processes leave no garbage. A save killed (a real SIGKILL, by strace)
// after writing its temporary leaves it in the directory store: the next save or prune removes it,
// `ls` never shows it, and a live writer's temporary is never touched.
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCli, tempDir, writeTree } from './helpers.js';
import { spawnWithSignal, straceWorks } from './kill-points.js';

const test = suite('directory store: temporaries of killed saves');
let work: string;
let store: string;
let remove: () => Promise<void>;
test.before.each(async () => {
  assert.ok(await straceWorks(), 'strace can kill a process at a syscall');
  ({ dir: work, remove } = await tempDir());
  store = join(work, 'store');
  // In a Nix build the store directory exists beforehand (the admin's one-time set-up).
  mkdirSync(store);
});
test.after.each(() => remove());

/** A build that restores, makes obj/a.o and saves `name`; with `kill`, the save dies before its temporary is renamed. */
async function build(name: string, kill: boolean): Promise<void> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, { 'main.c': 'int main(void) { return 0; }\n' });
  const args = ['--store', store, '--cache-name', name, '--cache-dir', 'obj'];
  const env = { NIX_BUILD_TOP: top };
  assert.is((await runCli(['restore', ...args], { cwd: root, env })).code, 0);
  mkdirSync(join(root, 'obj'), { recursive: true });
  writeFileSync(join(root, 'obj/a.o'), `${name} artifact`);
  if (!kill) {
    const saved = await runCli(['save', ...args], { cwd: root, env });
    assert.match(saved.stderr, /save: saved/, saved.stderr);
    return;
  }
  // fdatasync: the temporary is whole, the rename to its key not done.
  const killed = await spawnWithSignal('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fdatasync', '-e', 'inject=fdatasync:signal=SIGKILL:when=1',
    process.execPath, CLI, 'save', ...args], { cwd: root, env });
  assert.is(killed.signal, 'SIGKILL', killed.stderr);
}

const temporaries = () => readdirSync(store, { recursive: true }).map(String).filter((name) => name.includes('.tmp-')).sort();

test('the next save (of any name) removes a killed save\'s temporary; ls never shows it', async () => {
  await build('repo/main', true);
  const [left, ...more] = temporaries();
  assert.ok(left !== undefined && more.length === 0, `one temporary left: ${temporaries().join(', ')}`);
  const listed = await runCli(['ls', '--store', store], { cwd: work });
  assert.is(listed.code, 0);
  assert.not.match(listed.stdout + listed.stderr, /\.tmp-/);
  assert.match(listed.stderr, /ls: 0 archives/);

  // Beside it: a live writer's temporary (this process, on this host), and two of writers it
  // cannot check (another host): one written to just now, one not for two hours.
  const named = /^(.*\.tmp-)(\d+)-([0-9a-f]{8})-[0-9a-f]{8}$/.exec(left!);
  assert.ok(named, `the temporary's name records its writer: ${left}`);
  const [, base, pid, writer] = named;
  const live = `${base}${process.pid}-${writer}-00000001`;
  const fresh = `${base}${pid}-0badc0de-00000002`;
  const old = `${base}${pid}-0badc0de-00000003`;
  for (const name of [live, fresh, old]) writeFileSync(join(store, name), 'partial');
  const hoursAgo = (Date.now() - 2 * 3600e3) / 1000;
  utimesSync(join(store, old), hoursAgo, hoursAgo);

  await build('other/name', false);
  assert.equal(temporaries(), [live, fresh].sort(), 'the dead writer\'s and the stale one are gone; the live and the fresh one stay');
});

test('prune removes a killed save\'s temporary too', async () => {
  await build('repo/main', false);
  await build('repo/main', true);
  assert.is(temporaries().length, 1);
  const pruned = await runCli(['prune', '--store', store, '--keep', '1'], { cwd: work });
  assert.is(pruned.code, 0, pruned.stderr);
  assert.equal(temporaries(), []);
  assert.is(readdirSync(join(store, 'repo/main')).filter((object) => !object.endsWith('.restored')).length, 1, 'the archive stays');
});

test.run();
