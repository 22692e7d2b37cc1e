// Issue #15, item 8: odd trees. An unreadable artifact is left out and named once (the rest is
// saved); names that are not UTF-8 are one summary line; cache dirs with spaces work from the
// command line, the environment and the Nix wrapper.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCommand, tempDir, writeTree } from './helpers.js';
import { saveBuild, warnings, type SaveBuildOptions } from './save-build.js';

const test = suite('save: odd trees');
const USER = 30011;
let work: string;
let store: string;
let remove: () => Promise<void>;
test.before.each(async () => {
  ({ dir: work, remove } = await tempDir());
  chmodSync(work, 0o755);
  store = join(work, 'store');
  mkdirSync(store);
  chownSync(store, USER, USER);
});
test.after.each(() => remove());

test('unreadable artifacts (mode 000, saved by a build user) are left out and named once; the rest is saved', async () => {
  assert.is(process.getuid?.(), 0, 'running a build as another user needs root');
  const saved = await saveBuild(work, store, 'locked', {
    uid: USER,
    fill: (root) => {
      writeTree(root, { 'obj/a.o': 'readable', 'obj/sub/b.o': 'readable too', 'obj/secret.o': 'unreadable', 'obj/locked/c.o': 'in a locked dir' });
      chmodSync(join(root, 'obj/secret.o'), 0);
      chmodSync(join(root, 'obj/locked'), 0);
    },
  });
  assert.is(saved.save.code, 0, saved.save.stderr);
  assert.match(saved.save.stderr, /save: saved locked, .*; 2 files/, saved.save.stderr);
  const lines = warnings(saved.save.stderr);
  assert.is(lines.length, 2, saved.save.stderr);
  assert.match(lines.join('\n'), /not saved: 1 entries that could not be read or changed while saving: obj\/secret\.o \(EACCES/);
  assert.match(lines.join('\n'), /not saved: 1 directories that could not be read, so neither what is in them: obj\/locked: EACCES/);
  assert.not.match(saved.save.stderr, /store/i, 'nothing blames the store');

  const restored = await saveBuild(work, store, 'locked', { uid: USER });
  assert.match(restored.restore.stderr, /restore: hit locked/, restored.restore.stderr);
  assert.is(readFileSync(join(restored.root, 'obj/sub/b.o'), 'utf8'), 'readable too');
  assert.not.ok(existsSync(join(restored.root, 'obj/secret.o')));

  // Every artifact unreadable: the archive is never completed, and the stored one stays.
  const archives = () => readdirSync(join(store, 'locked')).filter((object) => !object.endsWith('.restored'));
  const [object] = archives();
  const before = readFileSync(join(store, 'locked', object!));
  const none = await saveBuild(work, store, 'locked', {
    uid: USER,
    fill: (root) => {
      writeTree(root, { 'obj/a.o': 'rebuilt' });
      for (const path of ['obj/a.o', 'obj/sub/b.o']) chmodSync(join(root, path), 0);
    },
  });
  assert.is(none.save.code, 0);
  assert.match(none.save.stderr, /save failed, the build goes on: every artifact was left out, and an empty archive would replace the cache/, none.save.stderr);
  assert.not.match(none.save.stderr, /store/i, 'nothing blames the store');
  assert.equal(archives(), [object]);
  assert.equal(readFileSync(join(store, 'locked', object!)), before);
});

test('names that are not UTF-8: one summary line, the other files saved and restored', async () => {
  const bad = (root: string, ...parts: number[][]) => Buffer.concat([Buffer.from(`${root}/obj/`), ...parts.map((p) => Buffer.from(p))]);
  const saved = await saveBuild(work, store, 'names', {
    sources: { 'main.c': 'int main(void) { return 0; }\n', 'caf\u00e9.c': 'int x;\n' },
    fill: (root) => {
      writeTree(root, { 'obj/good.o': 'good', 'obj/ünïcode.o': 'utf-8 is fine' });
      for (let i = 0; i < 300; i++) writeFileSync(bad(root, [0x62, 0xff, 0x2d], [...Buffer.from(`${i}.o`)]), 'latin1 name');
      mkdirSync(bad(root, [0xfe, 0x64]));
      for (let i = 0; i < 20; i++) writeFileSync(Buffer.concat([bad(root, [0xfe, 0x64]), Buffer.from(`/inner-${i}.o`)]), 'below a latin1 dir');
    },
  });
  assert.is(saved.save.code, 0, saved.save.stderr);
  const lines = warnings(saved.save.stderr);
  assert.is(lines.length, 1, saved.save.stderr);
  assert.match(lines[0]!, /not saved: 320 artifacts whose paths are not UTF-8 .*: obj\/b\\xff-/);
  assert.match(saved.save.stderr, /save: saved names, .*; 2 files/);
  const restored = await saveBuild(work, store, 'names');
  assert.match(restored.restore.stderr, /restore: hit names/, restored.restore.stderr);
  assert.is(readFileSync(join(restored.root, 'obj/ünïcode.o'), 'utf8'), 'utf-8 is fine');
});

const fillSpaced = (root: string) => writeTree(root, { 'my build/a.o': 'spaced', 'obj/b.o': 'plain' });

test('cache dirs with spaces: from the command line and from NBC_CACHE_DIRS (comma-separated)', async () => {
  const cases: [string, SaveBuildOptions][] = [
    ['flags', { cacheDirs: ['my build', 'obj'] }],
    // Blanks around the commas are separators' padding, not part of a name.
    ['env', { cacheDirs: [], env: { NBC_CACHE_DIRS: 'my build, obj' } }],
  ];
  for (const [name, options] of cases) {
    const saved = await saveBuild(work, store, name, { ...options, fill: fillSpaced });
    assert.match(saved.save.stderr, new RegExp(`save: saved ${name}, .*; 2 files`), saved.save.stderr);
    const restored = await saveBuild(work, store, name, options);
    assert.match(restored.restore.stderr, new RegExp(`restore: hit ${name}`), restored.restore.stderr);
    assert.is(readFileSync(join(restored.root, 'my build/a.o'), 'utf8'), 'spaced');
    assert.is(readFileSync(join(restored.root, 'obj/b.o'), 'utf8'), 'plain');
  }
});

test('cache dirs with spaces through the Nix wrapper\'s hooks', async () => {
  const wrapper = fileURLToPath(new URL('../../nix/default.nix', import.meta.url));
  const expr = `let w = import ${wrapper} { pkgs = {}; cli = "${process.execPath} ${CLI}"; store = "${store}"; cache-name = "wrapped";
    master-cache = "main"; cache-dirs = [ "my build" "obj" ]; toolchain-salt = null; strict = true; } { overrideAttrs = f: f {}; };
    in { inherit (w) preConfigure preInstall; }`;
  const hooks = await runCommand('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { env: { HOME: work } });
  assert.is(hooks.code, 0, hooks.stderr);
  const { preConfigure, preInstall } = JSON.parse(hooks.stdout) as { preConfigure: string; preInstall: string };
  const build = async (fill?: (root: string) => void) => {
    const top = join(work, `nix-build-${Math.random().toString(36).slice(2)}`);
    const root = join(top, 'source');
    writeTree(root, { 'main.c': 'int main(void) { return 0; }\n' });
    const run = (hook: string) => runCommand('bash', ['-c', hook], { cwd: root, env: { NIX_BUILD_TOP: top, HOME: '/homeless-shelter' } });
    const restore = await run(preConfigure);
    fill?.(root);
    return { root, restore: restore.stderr, save: (await run(preInstall)).stderr };
  };
  const first = await build(fillSpaced);
  assert.match(first.save, /save: saved wrapped, .*; 2 files/, first.save);
  const second = await build();
  assert.match(second.restore, /restore: hit wrapped/, second.restore);
  assert.is(readFileSync(join(second.root, 'my build/a.o'), 'utf8'), 'spaced');
});

test.run();
