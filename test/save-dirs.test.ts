// Issue #15, item 3: a good cache is never replaced with less. A cache dir that is missing, a file
// or a link is named with why, and the save is skipped unless --allow-partial asks for the rest.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from './helpers.js';
import { saveBuild, warnings } from './save-build.js';

const test = suite('save: never replace a good cache with less');
let work: string;
let store: string;
let remove: () => Promise<void>;
test.before.each(async () => {
  ({ dir: work, remove } = await tempDir());
  store = join(work, 'store');
  // In a Nix build the store directory exists beforehand (the admin's one-time set-up).
  mkdirSync(store);
});
test.after.each(() => remove());

const DIRS = ['obj', 'lib'];
const full = (root: string) => {
  for (const dir of DIRS) {
    mkdirSync(join(root, dir));
    writeFileSync(join(root, dir, 'a.o'), `${dir} artifact`);
  }
};

/** The one stored object of `name`: its bytes and time, to see that nothing replaced it. */
function stored(name: string): string {
  const objects = readdirSync(join(store, name)).filter((object) => !object.endsWith('.restored'));
  assert.is(objects.length, 1, `one object, no temporaries: ${objects.join(', ')}`);
  const path = join(store, name, objects[0]!);
  return `${objects[0]} ${statSync(path).mtimeMs} ${readFileSync(path).toString('base64')}`;
}

// Each after a restore that put the good obj and lib in place.
const BROKEN: [string, (root: string) => void, RegExp][] = [
  ['missing', () => {}, /lib does not exist/],
  ['a file', (root) => writeFileSync(join(root, 'lib'), 'a file'), /lib is a file, not a directory/],
  ['a link', (root) => { mkdirSync(join(root, 'real-lib')); symlinkSync('real-lib', join(root, 'lib')); }, /lib is a symlink \(to real-lib\)/],
];

test('a cache dir that is missing, a file or a link: skipped by default, with one warning naming it and why', async () => {
  const good = await saveBuild(work, store, 'good', { cacheDirs: DIRS, fill: full });
  assert.match(good.save.stderr, /save: saved good/, good.save.stderr);
  const before = stored('good');
  for (const [what, breakLib, reason] of BROKEN) {
    const broken = await saveBuild(work, store, 'good', {
      cacheDirs: DIRS,
      fill: (root) => {
        writeFileSync(join(root, 'obj/a.o'), 'rebuilt');
        rmSync(join(root, 'lib'), { recursive: true, force: true });
        breakLib(root);
      },
    });
    assert.match(broken.restore.stderr, /restore: hit good/);
    assert.is(broken.save.code, 0, broken.save.stderr);
    const lines = warnings(broken.save.stderr);
    assert.is(lines.length, 1, `${what}: ${broken.save.stderr}`);
    assert.match(lines[0]!, reason, what);
    assert.match(lines[0]!, /not saving/);
    assert.match(broken.save.stderr, /save: skipped good/);
    assert.is(stored('good'), before, `${what}: the good object stays`);
  }
});

test('--allow-partial (or NBC_ALLOW_PARTIAL) saves the other cache dirs and says which it left out', async () => {
  const onlyObj = (root: string) => {
    mkdirSync(join(root, 'obj'));
    writeFileSync(join(root, 'obj/a.o'), 'obj artifact');
  };
  const flag = await saveBuild(work, store, 'partial', { cacheDirs: DIRS, fill: onlyObj, saveArgs: ['--allow-partial'] });
  assert.match(flag.save.stderr, /warning: saving without lib \(does not exist\), as allow-partial asks/, flag.save.stderr);
  assert.match(flag.save.stderr, /save: saved partial/);
  const env = await saveBuild(work, store, 'partial-env', { cacheDirs: DIRS, fill: onlyObj, env: { NBC_ALLOW_PARTIAL: '1' } });
  assert.match(env.save.stderr, /save: saved partial-env/, env.save.stderr);
  const restored = await saveBuild(work, store, 'partial', { cacheDirs: DIRS });
  assert.match(restored.restore.stderr, /restore: hit partial/, restored.restore.stderr);
  assert.is(readFileSync(join(restored.root, 'obj/a.o'), 'utf8'), 'obj artifact');
});

test('every cache dir missing, or all of them empty: nothing is saved; --strict fails only for the missing', async () => {
  await saveBuild(work, store, 'kept', { fill: (root) => { mkdirSync(join(root, 'obj')); writeFileSync(join(root, 'obj/a.o'), 'a'); } });
  const before = stored('kept');
  const clean = (root: string) => rmSync(join(root, 'obj'), { recursive: true });
  const missing = await saveBuild(work, store, 'kept', { fill: clean });
  assert.is(missing.save.code, 0);
  assert.match(missing.save.stderr, /warning: not saving: no cache dir can be saved: obj does not exist/, missing.save.stderr);
  const empty = await saveBuild(work, store, 'kept', { fill: (root) => { clean(root); mkdirSync(join(root, 'obj/sub'), { recursive: true }); } });
  assert.match(empty.save.stderr, /warning: not saving: the cache dirs hold no artifacts/, empty.save.stderr);
  assert.is(stored('kept'), before);
  const strict = await saveBuild(work, store, 'kept', { fill: clean, saveArgs: ['--strict'] });
  assert.is(strict.save.code, 1, strict.save.stderr);
  assert.match(strict.save.stderr, /obj does not exist/);
  assert.is(stored('kept'), before);
});

test('the whole tree (.): a .cache-meta directory of the build is left out, and the archive restores', async () => {
  const sources = { 'main.c': 'int main(void) { return 0; }\n' };
  const first = await saveBuild(work, store, 'whole', {
    cacheDirs: ['.'], sources,
    fill: writeTree,
  });
  assert.match(first.save.stderr, /warning: not saved: \.cache-meta, the name the archive keeps its own files under/, first.save.stderr);
  assert.match(first.save.stderr, /save: saved whole/);
  const second = await saveBuild(work, store, 'whole', { cacheDirs: ['.'], sources });
  assert.match(second.restore.stderr, /restore: hit whole/, second.restore.stderr);
  assert.is(readFileSync(join(second.root, 'main.o'), 'utf8'), 'object');
  assert.not.ok(existsSync(join(second.root, '.cache-meta')));
});

function writeTree(root: string): void {
  writeFileSync(join(root, 'main.o'), 'object');
  mkdirSync(join(root, '.cache-meta'));
  writeFileSync(join(root, '.cache-meta/notes'), 'a tool of the build keeps notes here');
}

test.run();
