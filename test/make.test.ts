import { readFileSync, statSync, writeFileSync, utimesSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, expectedOutput, unitName, type CProjectOptions } from '../bench/c-project.js';
import { nixLikeBuild as build, type BuildOptions } from './build.js';
import { execFileAsync, runCli, tempDir, writeTree } from './helpers.js';

const test = suite('make round trips through the CLI');
let work: string;
let store: string;
let removeWork: () => Promise<void>;

test.before(async () => {
  ({ dir: work, remove: removeWork } = await tempDir());
  store = join(work, 'store');
});
test.after(() => removeWork());

const nixLikeBuild = (files: Record<string, string>, name: string, options: BuildOptions = {}) =>
  build(work, { NBC_STORE: store }, files, name, options);

async function cleanProgram(files: Record<string, string>, objdir = 'obj'): Promise<Buffer> {
  const root = await mkdtemp(join(work, 'clean-'));
  writeTree(root, files);
  await execFileAsync('make', [], { cwd: root });
  return readFileSync(join(root, objdir, 'prog'));
}

const PROJECT: CProjectOptions = { units: 8 };
const ALL = ['main.c', ...Array.from({ length: 8 }, (_, i) => `${unitName(i + 1)}.c`)].sort();

test('cold build compiles everything; one changed .c recompiles exactly that file and links', async () => {
  const files = cProject(PROJECT);
  const cold = await nixLikeBuild(files, 'one-change');
  assert.equal(cold.compiled, ALL);
  assert.is(cold.report.outcome, 'miss');
  const changed = { ...files, [`${unitName(3)}.c`]: `${files[`${unitName(3)}.c`]}/* edited */\n` };
  const warm = await nixLikeBuild(changed, 'one-change');
  assert.is(warm.report.outcome, 'hit');
  assert.equal(warm.compiled, [`${unitName(3)}.c`]);
  assert.ok(warm.linked);
  assert.equal(readFileSync(join(warm.root, 'obj/prog')), await cleanProgram(changed));
  const { stdout } = await execFileAsync(join(warm.root, 'obj/prog'));
  assert.is(stdout, expectedOutput(PROJECT));
  assert.ok(statSync(join(warm.root, 'obj/prog')).mode & 0o100, 'restored program keeps its execute bit');
});

test('a header change recompiles exactly the files that include it', async () => {
  const files = cProject(PROJECT);
  await nixLikeBuild(files, 'header');
  const warm = await nixLikeBuild({ ...files, 'group2.h': '#define GROUP_2 250\n' }, 'header');
  assert.equal(warm.compiled, [5, 6, 7, 8].map((i) => `${unitName(i)}.c`));
  assert.ok(warm.linked);
  const { stdout } = await execFileAsync(join(warm.root, 'obj/prog'));
  assert.is(stdout, `${Number(expectedOutput(PROJECT)) + 4 * 50}\n`);
});

test('a file rewritten with identical content and a new mtime recompiles nothing', async () => {
  const files = cProject(PROJECT);
  await nixLikeBuild(files, 'touched');
  const warm = await nixLikeBuild(files, 'touched', {
    // What patchPhase or substituteInPlace does: same bytes, fresh mtime.
    beforeRestore: (root) => {
      writeFileSync(join(root, 'common.h'), files['common.h']!);
      utimesSync(join(root, `${unitName(1)}.c`), new Date(), new Date());
    },
  });
  assert.equal(warm.compiled, []);
  assert.not.ok(warm.linked);
  assert.match(warm.saveOutput, /save: skipped touched \(nothing under the cache dirs changed since touched was restored; not uploading\)/);
});

test('removing a source and its use leaves a build identical to a clean one', async () => {
  const files = cProject(PROJECT);
  await nixLikeBuild(files, 'removed');
  const smaller = cProject({ ...PROJECT, omit: [4] });
  const warm = await nixLikeBuild(smaller, 'removed');
  assert.equal(warm.compiled, ['main.c']);
  assert.ok(warm.linked);
  assert.equal(readFileSync(join(warm.root, 'obj/prog')), await cleanProgram(smaller));
  const { stdout } = await execFileAsync(join(warm.root, 'obj/prog'));
  assert.is(stdout, expectedOutput({ ...PROJECT, omit: [4] }));
  assert.match(warm.restoreOutput, new RegExp(`removed\\s+${unitName(4)}\\.c`));
});

test('a missing cache name falls back to the first present fallback, and the report says so', async () => {
  const files = cProject(PROJECT);
  await nixLikeBuild(files, 'main-branch');
  const changed = { ...files, [`${unitName(7)}.c`]: `${files[`${unitName(7)}.c`]}/* pr */\n` };
  const pr = await nixLikeBuild(changed, 'pr-17', { fallbacks: ['absent', 'main-branch'] });
  assert.equal(pr.compiled, [`${unitName(7)}.c`]);
  assert.is(pr.report.hit?.name, 'main-branch');
  assert.ok(pr.report.hit?.fallback);
  assert.equal(pr.report.attempts.map((a) => `${a.name}:${a.result}`), ['pr-17:missing', 'absent:missing', 'main-branch:hit']);
  assert.match(pr.restoreOutput, /hit main-branch \(fallback\)/);
  const again = await nixLikeBuild(changed, 'pr-17', { fallbacks: ['main-branch'] });
  assert.equal(again.compiled, []);
  assert.is(again.report.hit?.name, 'pr-17');
});

test('in-tree (--cache-dir .): sources are never archived, and an archived file never replaces a source', async () => {
  const files = cProject({ ...PROJECT, objdir: '.' });
  const cold = await nixLikeBuild(files, 'in-tree', { cacheDir: '.' });
  assert.equal(cold.compiled, ALL);
  // The first build left notes.txt behind as an artifact; in the next commit it is a source.
  writeFileSync(join(cold.root, 'notes.txt'), 'artifact from the old build\n');
  await runCli(['save', '--cache-name', 'in-tree', '--cache-dir', '.'], { cwd: cold.root, env: { NIX_BUILD_TOP: cold.top, NBC_STORE: store } });
  const listing = (await execFileAsync('tar', ['--zstd', '-tf', join(store, 'in-tree', (await execFileAsync('ls', [join(store, 'in-tree')])).stdout.trim())])).stdout;
  assert.not.match(listing, /\.c$|\.h$|Makefile/m);
  assert.match(listing, /^notes\.txt$/m);
  const edited = { ...files, 'notes.txt': 'now a source\n', [`${unitName(2)}.c`]: `${files[`${unitName(2)}.c`]}/* x */\n` };
  const warm = await nixLikeBuild(edited, 'in-tree', { cacheDir: '.' });
  assert.equal(warm.compiled, [`${unitName(2)}.c`]);
  assert.is(readFileSync(join(warm.root, 'notes.txt'), 'utf8'), 'now a source\n');
  assert.match(warm.restoreOutput, /skipped\s+notes\.txt\s+\(is a source file now\)/);
});

test.run();
