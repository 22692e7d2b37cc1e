// Issue #15, items 1 and 2: a saved archive always restores (symlinks decided one by one), and
// save never reads outside the tree (cache dirs reached through symlinks are refused).
import { existsSync, mkdirSync, readdirSync, readlinkSync, realpathSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { packArchive } from '../src/archive.js';
import { listArtifacts } from '../src/artifacts.js';
import { WorkerPool } from '../src/pool.js';
import { execFileAsync, tempDir, writeTree } from './helpers.js';
import { saveBuild, warnings } from './save-build.js';

const test = suite('save: symlinks and cache dirs outside the tree');
let work: string;
let store: string;
let outside: string;
let remove: () => Promise<void>;
test.before.each(async () => {
  ({ dir: work, remove } = await tempDir());
  store = join(work, 'store');
  // In a Nix build the store directory exists beforehand (the admin's one-time set-up).
  mkdirSync(store);
  outside = join(work, 'outside');
  mkdirSync(join(outside, 'obj'), { recursive: true });
  writeFileSync(join(outside, 'secret'), 'not part of any tree');
  writeFileSync(join(outside, 'obj', 'stolen.o'), 'not part of any tree');
});
test.after.each(() => remove());

async function archiveListing(name: string): Promise<string> {
  const [object] = readdirSync(join(store, name)).filter((entry) => !entry.endsWith('.restored'));
  return (await execFileAsync('tar', ['--zstd', '-tvf', join(store, name, object!)])).stdout;
}

const KEPT = { 'same-dir': 'a.o', 'to-source': '../src/x.c', 'dir-link': 'sub', chain: 'same-dir', dotted: './sub/../a.o', 'to-missing': 'not-yet.o' };
const LEFT_OUT = ['absolute', 'climbing', 'through-link', 'through-tree-link', 'bad-target', 'dot-dot-through'];

test('in-tree relative symlinks are kept, the others left out with one warning, and the archive restores', async () => {
  const sources = { 'main.c': 'int main(void) { return 0; }\n', 'src/x.c': 'int x;\n' };
  const first = await saveBuild(work, store, 'links', {
    sources,
    fill: (root) => {
      mkdirSync(join(root, 'obj/sub'), { recursive: true });
      writeFileSync(join(root, 'obj/a.o'), 'a');
      writeFileSync(join(root, 'obj/sub/b.o'), 'b');
      for (const [name, target] of Object.entries(KEPT)) symlinkSync(target, join(root, 'obj', name));
      symlinkSync(join(outside, 'secret'), join(root, 'obj/absolute'));
      symlinkSync('../../../outside/secret', join(root, 'obj/climbing'));
      symlinkSync('dir-link/b.o', join(root, 'obj/through-link'));
      symlinkSync(outside, join(root, 'src-link'));
      symlinkSync('../src-link/secret', join(root, 'obj/through-tree-link'));
      symlinkSync(Buffer.from('caf\xe9.o', 'latin1'), join(root, 'obj/bad-target'));
      symlinkSync('dir-link/../../src/x.c', join(root, 'obj/dot-dot-through'));
    },
  });
  assert.is(first.save.code, 0, first.save.stderr);
  assert.match(first.save.stderr, /save: saved links/, first.save.stderr);
  const lines = warnings(first.save.stderr);
  assert.is(lines.length, 1, first.save.stderr);
  for (const name of LEFT_OUT) assert.ok(lines[0]!.includes(`obj/${name} (`), `${name} named in: ${lines[0]}`);
  const listing = await archiveListing('links');
  for (const name of LEFT_OUT) assert.not.ok(listing.includes(`obj/${name} `), `${name} not archived`);

  const second = await saveBuild(work, store, 'links', { sources });
  assert.match(second.restore.stderr, /restore: hit links/, second.restore.stderr);
  assert.not.match(second.restore.stderr, /warning/);
  for (const [name, target] of Object.entries(KEPT)) assert.is(readlinkSync(join(second.root, 'obj', name)), target);
  for (const name of LEFT_OUT) assert.not.ok(existsSync(join(second.root, 'obj', name)), `${name} not restored`);
});

test('a cache dir below a symlinked parent (build -> /elsewhere) is refused, and no object replaces the stored one', async () => {
  const fill = (root: string) => {
    symlinkSync(outside, join(root, 'build'));
    mkdirSync(join(root, 'obj'));
    writeFileSync(join(root, 'obj/a.o'), 'a');
  };
  const refused = await saveBuild(work, store, 'parent', { cacheDirs: ['build/obj', 'obj'], fill });
  assert.is(refused.save.code, 0, refused.save.stderr);
  assert.match(refused.save.stderr, /warning: not saving: an archive without build\/obj lies below build, which is a symlink \(to [^)]*outside\)/, refused.save.stderr);
  assert.not.ok(existsSync(join(store, 'parent')), 'nothing stored');

  const partial = await saveBuild(work, store, 'parent', { cacheDirs: ['build/obj', 'obj'], fill, saveArgs: ['--allow-partial'] });
  assert.match(partial.save.stderr, /warning: saving without build\/obj \(lies below build, which is a symlink/, partial.save.stderr);
  assert.match(partial.save.stderr, /save: saved parent/);
  const listing = await archiveListing('parent');
  assert.match(listing, /obj\/a\.o/);
  assert.not.match(listing, /stolen|secret/);
});

test('a/b where a is a link (out of the tree or into it), and a cache dir that is itself a link: refused', async () => {
  for (const [name, link] of [['out', () => outside], ['in', () => 'real']] as const) {
    const result = await saveBuild(work, store, `nested-${name}`, {
      cacheDirs: ['a/obj'],
      fill: (root) => {
        mkdirSync(join(root, 'real/obj'), { recursive: true });
        writeFileSync(join(root, 'real/obj/a.o'), 'a');
        symlinkSync(link(), join(root, 'a'));
      },
    });
    assert.is(result.save.code, 0);
    assert.match(result.save.stderr, /warning: not saving: no cache dir can be saved: a\/obj lies below a, which is a symlink/, result.save.stderr);
    assert.not.ok(existsSync(join(store, `nested-${name}`)));
  }
  const direct = await saveBuild(work, store, 'direct', { fill: (root) => symlinkSync(join(outside, 'obj'), join(root, 'obj')) });
  assert.match(direct.save.stderr, /no cache dir can be saved: obj is a symlink/, direct.save.stderr);
  const strict = await saveBuild(work, store, 'direct', { fill: (root) => symlinkSync(join(outside, 'obj'), join(root, 'obj')), saveArgs: ['--strict'] });
  assert.is(strict.save.code, 1, 'only --strict fails the build');
  assert.not.ok(existsSync(join(store, 'direct')));
});

test('absolute cache dirs and ".." components are invalid options: nothing is read or stored', async () => {
  for (const dir of [outside, '../outside', 'obj/../../outside']) {
    const result = await saveBuild(work, store, 'escape', { cacheDirs: [dir], fill: (root) => mkdirSync(join(root, 'obj')) });
    assert.is(result.save.code, 2, result.save.stderr);
    assert.match(result.save.stderr, /--cache-dir: must be a relative path without "\.\."/);
  }
  assert.not.ok(existsSync(join(store, 'escape')));
});

test('a directory swapped for a link between listing and packing is not read through', async () => {
  const root = join(work, 'tree');
  writeTree(root, { 'obj/sub/a.o': 'inside', 'obj/b.o': 'b' });
  writeFileSync(join(outside, 'obj', 'a.o'), 'stolen from outside');
  const realRoot = realpathSync(root, 'buffer');
  const listed = await listArtifacts({ root: Buffer.from(root), realRoot, cacheDirs: ['obj'], sources: new Set(), skip: new Set() });
  assert.equal(listed.entries.map((e) => e.path), ['obj', 'obj/b.o', 'obj/sub', 'obj/sub/a.o']);
  renameSync(join(root, 'obj/sub'), join(work, 'moved-away'));
  symlinkSync(join(outside, 'obj'), join(root, 'obj/sub'));
  const pool = new WorkerPool(1);
  let skipped: readonly [string, string][] = [];
  try {
    const body = packArchive({
      root, realRoot, entries: listed.entries, compression: 'none', pool, created: 0,
      onSkipped: (found) => { skipped = found; }, metaFiles: () => new Map(),
    });
    const tar = Buffer.concat(await body.toArray() as Buffer[]);
    assert.not.ok(tar.includes('stolen'), 'nothing from outside the tree in the archive');
    assert.ok(tar.includes('obj/b.o'));
  } finally {
    await pool.close();
  }
  assert.equal(skipped.map(([path, why]) => `${path}: ${why}`), [
    'obj/sub: was a directory when listed, is not now', 'obj/sub/a.o: leads out of the tree',
  ]);
});

test.run();
