/**
 * Exact warm builds with real build tools: CMake + Ninja, Meson + Ninja, autotools (in-tree, libtool,
 * dependency tracking) and a plain gcc -MD Makefile, each building the same generated C project
 * (test/realtools/project.ts) through restore → configure → settle → build → save in a fresh tree,
 * as a Nix build does. A compiler wrapper outside the tree logs every compile and link.
 *
 * Per build system, in order (each step builds once; the tests below read its result):
 *   cold at A; in-place control (no cache); clean build at A of the edited sources; warm at A after a
 *   one-line edit of h04.c; no-op warm at A; clean build at B (another path, another length) of the
 *   sources with s03.c edited too; warm at B restoring the cache saved at A.
 * NBC_REALTOOLS_KEEP=1 keeps the work directories; NBC_REALTOOLS_VERBOSE=1 prints transcripts and which
 * files of the last tree contain its root path.
 */
import { rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from './helpers.js';
import { ALL_SOURCES, editUnit } from './realtools/project.js';
import { buildSystems, filesContaining, freshBuild, inPlaceRebuild, installWrapper, type BuildSystem, type Driver, type Step } from './realtools/tools.js';

const KEEP = process.env.NBC_REALTOOLS_KEEP === '1';
const VERBOSE = process.env.NBC_REALTOOLS_VERBOSE === '1';

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= f());
}

const describe = (step: Step) => (step.failed === undefined ? '' : `failed at ${step.failed}:\n${step.transcript.at(-1) ?? ''}`);

function defineSuite(system: BuildSystem): void {
  const test = suite(`${system.name}: exact warm builds with the real tool`);
  let driver: Driver;
  let remove: () => Promise<void>;
  let A: string;
  let B: string;
  const summary: string[] = [];
  const note = (label: string, step: Step, extra = '') => {
    summary.push(`${label.padEnd(10)} ${step.failed ? `FAILED(${step.failed})` : 'ok'} restore=${step.report?.outcome ?? '-'} settle=${step.settle} `
      + `compiled=${step.compiled.length === ALL_SOURCES.length ? 'ALL' : `[${step.compiled.join(',')}]`} linked=[${step.linked.join(',')}] `
      + `generated=[${step.generated.join(',')}] ${step.seconds.toFixed(1)}s ${extra}`);
    if (VERBOSE) summary.push(...step.transcript.map((t) => `    ${t.replace(/\n/g, '\n    ')}`));
  };

  let suiteStarted = 0;
  test.before(async () => {
    suiteStarted = Date.now();
    const made = await tempDir(`nbc-rt-${system.name}-`);
    remove = made.remove;
    driver = { work: made.dir, store: join(made.dir, 'store'), cc: installWrapper(join(made.dir, 'tools')) };
    A = join(made.dir, 'a', 'src');
    B = join(made.dir, 'relocated-elsewhere', 'source');
  });
  test.after(async () => {
    if (VERBOSE) {
      const inTree = filesContaining(join(B, system.cacheDir), B);
      summary.push(`files under ${system.cacheDir} containing the root path: text [${inTree.text.join(', ')}] binary [${inTree.binary.join(', ')}]`);
    }
    console.log(`\n[${system.name}] ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s\n  ${summary.join('\n  ')}`);
    if (KEEP) console.log(`  kept ${driver.work}`);
    else await remove();
  });

  const name = `rt-${system.name}`;
  const sources = once(async () => await system.sources(driver.work));
  const edited = once(async () => editUnit(await sources(), 'h04', 1));
  const edited2 = once(async () => editUnit(await edited(), 's03', 2));

  const cold = once(async () => {
    const step = await freshBuild(driver, system, A, await sources(), name);
    note('cold A', step);
    return step;
  });
  const control = once(async () => {
    const tree = (await cold()).root;
    const files = await edited();
    const edit = await inPlaceRebuild(driver, system, tree, 'edit', () => {
      const path = join(tree, 'src/dso/h04.c');
      writeFileSync(path, files['src/dso/h04.c'] as string);
      const now = new Date();
      utimesSync(path, now, now);
    });
    note('in-place edit', edit);
    const noop = await inPlaceRebuild(driver, system, tree, 'noop');
    note('in-place no-op', noop);
    return { edit, noop };
  });
  const cleanA = once(async () => {
    await control();
    const step = await freshBuild(driver, system, A, await edited());
    note('clean A', step);
    return step;
  });
  const warmA = once(async () => {
    await cleanA();
    const step = await freshBuild(driver, system, A, await edited(), name);
    note('warm A', step);
    return step;
  });
  const noopA = once(async () => {
    await warmA();
    const step = await freshBuild(driver, system, A, await edited(), name);
    note('no-op A', step);
    return step;
  });
  const cleanB = once(async () => {
    await noopA();
    rmSync(A, { recursive: true, force: true }); // as in Nix: the first build's directory is gone
    const step = await freshBuild(driver, system, B, await edited2());
    note('clean B', step);
    return step;
  });
  let bOutcome = '';
  const warmB = once(async () => {
    await cleanB();
    const step = await freshBuild(driver, system, B, await edited2(), name);
    const r = step.report;
    bOutcome = r?.outcome === 'hit' ? 'hit (relocated)'
      : `miss: ${r?.attempts.map((a) => `${a.name} ${a.result}${a.reason ? ` (${a.reason})` : ''}`).join('; ') ?? 'no report'}`;
    note('warm B', step, bOutcome);
    return step;
  });

  const sameOutputs = (step: Step, clean: Step) => {
    assert.ok(Object.keys(clean.outputs).length === system.outputs.length, `the clean build made every output: ${describe(clean)}`);
    const why = step.failed === undefined ? '' : ` (the build ${describe(step)})`;
    for (const path of system.outputs) {
      assert.ok(step.outputs[path], `${path} exists${why}`);
      assert.ok(step.outputs[path]!.equals(clean.outputs[path]!), `${path} is byte-identical to a clean build's at the same path${why}`);
    }
    assert.is(step.programOutput, clean.programOutput, 'the program prints the same');
  };

  test('cold build at A: succeeds, restore misses, compiles every TU once, links everything, generates table.h', async () => {
    const step = await cold();
    assert.is(step.failed, undefined, describe(step));
    assert.is(step.report?.outcome, 'miss');
    assert.equal(step.compiled, ALL_SOURCES);
    assert.equal(step.linked, system.allLinks);
    assert.equal(step.generated, ['table.h']);
    assert.match(step.programOutput ?? '', /^realtools \d+\n$/);
  });

  test('in-place control, no cache: one edited .c compiles exactly that TU; building again compiles and links nothing', async () => {
    const { edit, noop } = await control();
    assert.is(edit.failed, undefined, describe(edit));
    assert.equal(edit.compiled, ['h04.c']);
    assert.ok(edit.linked.length > 0, 'the edit relinks');
    assert.equal(edit.generated, []);
    assert.equal(noop.compiled, []);
    assert.equal(noop.linked, []);
    assert.equal(noop.generated, []);
  });

  test('warm build at A after a one-line edit: succeeds, restore hits', async () => {
    const step = await warmA();
    assert.is(step.failed, undefined, describe(step));
    assert.is(step.report?.outcome, 'hit');
    assert.is(step.settle, 'ran');
  });

  test('warm build at A: compiles exactly h04.c, regenerates nothing', async () => {
    const step = await warmA();
    assert.equal(step.compiled, ['h04.c']);
    assert.equal(step.generated, []);
  });

  test('warm build at A: links exactly what the in-place build linked', async () => {
    const step = await warmA();
    assert.equal(step.linked, (await control()).edit.linked);
  });

  test('warm build at A: outputs byte-identical to a clean build at A', async () => {
    sameOutputs(await warmA(), await cleanA());
  });

  test('no-op warm build at A: succeeds, restore hits, compiles nothing', async () => {
    const step = await noopA();
    assert.is(step.failed, undefined, describe(step));
    assert.is(step.report?.outcome, 'hit');
    assert.equal(step.compiled, []);
    assert.equal(step.generated, []);
  });

  test('no-op warm build at A: links nothing', async () => {
    assert.equal((await noopA()).linked, []);
  });

  test('no-op warm build at A: outputs byte-identical to a clean build at A', async () => {
    sameOutputs(await noopA(), await cleanA());
  });

  test('warm build at B (cache from A): the build succeeds', async () => {
    const step = await warmB();
    assert.is(step.failed, undefined, describe(step));
  });

  test(`warm build at B: ${system.relocates ? 'relocated exactly (compiles s03.c, links prog)' : 'a miss with a reason and a full compile'}`, async () => {
    const step = await warmB();
    assert.ok(step.report, 'restore wrote its report');
    assert.is(step.report.outcome, system.relocates ? 'hit' : 'miss', bOutcome);
    if (step.report.outcome === 'hit') {
      assert.equal(step.compiled, ['s03.c'], `relocated hit: ${bOutcome}`);
      assert.equal(step.linked, ['prog']); // a static library's member changed: only the executable relinks
    } else {
      assert.ok(step.report.attempts.some((a) => a.reason), `a miss says why: ${bOutcome}`);
      assert.equal(step.compiled, ALL_SOURCES);
    }
  });

  test('warm build at B: outputs byte-identical to a clean build at B', async () => {
    sameOutputs(await warmB(), await cleanB());
  });

  test.run();
}

for (const system of buildSystems()) defineSuite(system);
