// Issue #15, item 5: state belongs to one build. Outside Nix the state lives in $TMPDIR, one per
// source root, and outlives the build: a save must record only what is proven for this tree now.
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, expectedOutput, parseMakeOutput, unitName } from '../bench/c-project.js';
import { execFileAsync, runCli, tempDir, writeTree } from './helpers.js';

const test = suite('save: state from an earlier restore');
let work: string;
let env: Record<string, string>;
let remove: () => Promise<void>;
test.before.each(async () => {
  ({ dir: work, remove } = await tempDir());
  await execFileAsync('mkdir', [join(work, 'tmp')]);
  // Outside Nix: no NIX_BUILD_TOP, so the state goes to $TMPDIR.
  env = { NBC_STORE: join(work, 'store'), TMPDIR: join(work, 'tmp'), HOME: work };
});
test.after.each(() => remove());

const PROJECT = { units: 4 };
const V1 = cProject(PROJECT);
const EDITED = `${unitName(2)}.c`;
const V2 = { ...V1, [EDITED]: V1[EDITED]!.replace('return 2 *', 'return 1000 + 2 *') };

const cli = async (command: string, root: string, name: string) => {
  const result = await runCli([command, '--cache-name', name, '--cache-dir', 'obj'], { cwd: root, env });
  assert.is(result.code, 0, result.stderr);
  return result.stderr;
};
const make = async (root: string) => parseMakeOutput((await execFileAsync('make', [], { cwd: root })).stdout);
const output = async (root: string) => (await execFileAsync(join(root, 'obj/prog'))).stdout;

/** A fresh checkout of the first version: restore, make; its program must be a clean build's. */
async function freshBuildIsClean(name: string, path: string): Promise<string[]> {
  const root = join(work, path);
  writeTree(root, V1);
  assert.match(await cli('restore', root, name), new RegExp(`restore: hit ${name}`));
  const { compiled } = await make(root);
  assert.is(await output(root), expectedOutput(PROJECT), 'the program is what a clean build makes');
  return compiled;
}

test('a source edited after restore (restore not run again) is saved as changed: no stale object ships', async () => {
  const root = join(work, 'checkout');
  writeTree(root, V1);
  await cli('restore', root, 'edited');
  await make(root);
  assert.match(await cli('save', root, 'edited'), /save: saved edited/);
  // The next build of this checkout: an edit, make, save; nobody ran restore.
  writeTree(root, { [EDITED]: V2[EDITED]! }, Date.now() / 1000);
  assert.equal((await make(root)).compiled, [EDITED]);
  assert.not.equal(await output(root), expectedOutput(PROJECT));
  const saved = await cli('save', root, 'edited');
  assert.match(saved, new RegExp(`warning: 1 sources changed since restore ran \\(${EDITED}\\)`), saved);
  assert.match(saved, /save: saved edited/);
  const compiled = await freshBuildIsClean('edited', 'fresh');
  assert.ok(compiled.includes(EDITED), `${EDITED} is compiled again: ${compiled.join(' ')}`);
});

test('another tree moved to the root of the restored one: its save is refused', async () => {
  // Made and built before the restore below, so nothing in it looks newer than that restore.
  const other = join(work, 'other');
  writeTree(other, V2);
  await make(other);
  const root = join(work, 'checkout');
  writeTree(root, V1);
  await cli('restore', root, 'moved');
  await make(root);
  renameSync(root, join(work, 'checkout.old'));
  renameSync(other, root);
  const saved = await cli('save', root, 'moved');
  assert.match(saved, /warning: not saving: the state in .* was recorded for another directory at .*checkout \(restore did not run in this one\)/, saved);
  assert.match(saved, /save: skipped moved/);
  // Nothing was saved, so a fresh checkout misses and builds clean.
  const fresh = join(work, 'fresh');
  writeTree(fresh, V1);
  assert.match(await cli('restore', fresh, 'moved'), /restore: miss/);
  await make(fresh);
  assert.is(await output(fresh), expectedOutput(PROJECT));
});

test('a source rewritten after restore with the same bytes stays unchanged: nothing rebuilds', async () => {
  const root = join(work, 'checkout');
  writeTree(root, V1);
  await cli('restore', root, 'same');
  await make(root);
  writeTree(root, { [EDITED]: V1[EDITED]! });
  const saved = await cli('save', root, 'same');
  assert.not.match(saved, /warning/, saved);
  assert.equal(await freshBuildIsClean('same', 'fresh'), []);
  assert.is(readFileSync(join(work, 'fresh', EDITED), 'utf8'), V1[EDITED]);
});

test.run();
