// One local store shared by several build users, as Nix's nixbld1..N use it: each build runs as
// another user of one group, with umask 022. Runs as root (like the Nix tests) to switch users.
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCommand, tempDir, writeTree, type CliResult } from '../helpers.js';

const test = suite('a local store shared by build users');
const GROUP = 30000;
const USERS = [30001, 30002];
let dir: string;
let store: string;
let remove: () => Promise<void>;

test.before(async () => {
  assert.is(process.getuid?.(), 0, 'switching build users needs root');
  ({ dir, remove } = await tempDir());
  chmodSync(dir, 0o755);
  store = join(dir, 'store');
  // The documented one-time set-up: install -d -m 2775 -o root -g nixbld DIR
  mkdirSync(store);
  chownSync(store, 0, GROUP);
  chmodSync(store, 0o2775);
});
test.after(() => remove());

/** Runs the CLI as `uid` (group GROUP) with umask 022, as a Nix build user. */
function runAs(uid: number, args: string[], cwd: string): Promise<CliResult> {
  return runCommand('/bin/sh', ['-c', 'umask 022 && exec "$@"', 'sh', process.execPath, CLI, ...args],
    { cwd, uid, gid: GROUP, env: { HOME: '/homeless-shelter', TMPDIR: cwd } });
}

/** A build as user `uid` in a fresh tree it owns: restore, write the artifact, save. */
async function buildAs(uid: number, build: number, artifact: string): Promise<{ restore: string; save: string }> {
  const top = join(dir, `build-${build}`);
  const root = join(top, 'source');
  writeTree(root, { 'a.c': 'int a;\n' });
  for (const path of [top, root, join(root, 'a.c')]) chownSync(path, uid, GROUP);
  const args = ['--store', store, '--cache-name', 'repo/main', '--cache-dir', 'obj', '--state-dir', join(top, 'state')];
  const restored = await runAs(uid, ['restore', ...args], root);
  assert.is(restored.code, 0, restored.stderr);
  mkdirSync(join(root, 'obj'), { recursive: true });
  writeFileSync(join(root, 'obj/a.o'), artifact);
  for (const path of [join(root, 'obj'), join(root, 'obj/a.o')]) chownSync(path, uid, GROUP);
  const saved = await runAs(uid, ['save', ...args], root);
  assert.is(saved.code, 0, saved.stderr);
  return { restore: restored.stderr, save: saved.stderr };
}

test('two build users in turn save to and restore from one store, with no warning', async () => {
  const builds = [[USERS[0]!, 'one'], [USERS[1]!, 'two'], [USERS[0]!, 'three']] as const;
  let build = 0;
  for (const [uid, artifact] of builds) {
    const { restore, save } = await buildAs(uid, ++build, artifact);
    assert.not.match(`${restore}${save}`, /warning/, `build ${build} as ${uid}:\n${restore}${save}`);
    assert.match(save, /save: saved repo\/main/);
    if (build > 1) assert.match(restore, /restore: hit repo\/main/);
  }
  const nameDir = join(store, 'repo', 'main');
  for (const path of [join(store, 'repo'), nameDir]) {
    assert.is(lstatSync(path).mode & 0o7777, 0o2775, `${path} is group-writable and setgid`);
    assert.is(lstatSync(path).gid, GROUP);
  }
  const objects = readdirSync(nameDir).sort();
  // Beside the archive, the record of its last restore (for prune --max-size).
  assert.is(objects.length, 2, `one archive and its marker, no temporaries: ${objects.join(', ')}`);
  assert.is(objects[1], `${objects[0]}.restored`);
  const object = lstatSync(join(nameDir, objects[0]!));
  assert.is(object.mode & 0o777, 0o664);
  assert.is(lstatSync(join(nameDir, objects[1]!)).mode & 0o777, 0o664, 'the next build user can replace the marker');
  const events = lstatSync(join(store, '.events.jsonl'));
  assert.is(events.mode & 0o777, 0o664, 'every build user can append events');
  assert.is(events.gid, GROUP);
  assert.is(object.uid, USERS[0], 'the last save (user one) replaced user two\'s object');
});

test('an unwritable store is one warning that names the fix, and the build goes on', async () => {
  chmodSync(store, 0o2755);
  try {
    const top = join(dir, 'build-denied');
    const root = join(top, 'source');
    writeTree(root, { 'a.c': 'int a;\n', 'obj/b.o': 'b' });
    for (const path of [top, root, join(root, 'a.c')]) chownSync(path, USERS[1]!, GROUP);
    const args = ['--store', store, '--cache-name', 'denied', '--cache-dir', 'obj', '--state-dir', join(top, 'state')];
    assert.is((await runAs(USERS[1]!, ['restore', ...args], root)).code, 0);
    // An artifact of the build (obj/b.o was there at restore: a source): with nothing to save, save would not write.
    writeFileSync(join(root, 'obj/c.o'), 'c');
    const saved = await runAs(USERS[1]!, ['save', ...args], root);
    assert.is(saved.code, 0);
    const warnings = saved.stderr.split('\n').filter((line) => line.includes('warning'));
    assert.is(warnings.length, 1, saved.stderr);
    assert.match(warnings[0]!, /EACCES.*install -d -m 2775 -o root -g nixbld DIR/);
  } finally {
    chmodSync(store, 0o2775);
  }
});

test.run();
