/**
 * Exact warm builds with compilers that track their own dependencies: Cargo (a workspace of three
 * crates, base ← engine ← app, CARGO_INCREMENTAL=0 and =1) and GHC (`ghc --make`, 17 modules), each
 * through restore → settle → build → save in a fresh tree with every source at mtime 1, as a Nix build
 * does. What was compiled and linked is read from the tool's own output (`cargo build -v`:
 * Compiling lines, rustc command lines with --crate-type bin, Dirty lines as the explanation; ghc:
 * `[n of m] Compiling X`, `Linking build/prog`).
 * On demand (slow): `npm run build && npx uvu dist/test/slow "\.slow\.js$"`.
 *
 * Per toolchain, in order (each step builds once; the tests read its result):
 *   cold at A (S0); in-place control in the cold tree, no cache: edit 1 (S1), no-op, edit 2 (S2);
 *   clean A S1; warm A S1; no-op warm A S1; clean A S2; warm A S2; then A is removed; for GHC only,
 *   replay B (S0 clean, then S1, S2, S3 in place: GHC's objects depend on history, see ghcToolchain);
 *   clean B S3 (another path: S2 with edit 1's unit edited again); warm B S3 restoring the cache
 *   saved at A (an exact relocated hit, or a miss with a reason and a full build).
 * The edits: cargo 1 = one line of engine/e2.rs (a lib crate in the middle), 2 = one line of
 * app/a2.rs (the bin crate); ghc 1 = a value in Core.M04 (middle of the chain), 2 = a new export in
 * Leaf.T03 (its interface changes).
 * NBC_TOOLCHAINS_KEEP=1 keeps the work directories; NBC_TOOLCHAINS_VERBOSE=1 prints transcripts;
 * NBC_TOOLCHAINS_ONLY=cargo|ghc runs one toolchain.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, runCommand, tempDir, type CliResult } from '../helpers.js';
import type { SourceTree } from '../realtools/project.js';
import { filesContaining, listFiles, settle, writeSources } from '../realtools/tools.js';
import { CARGO_CRATES, cargoSources, editHaskellExport, editHaskellValue, editRust, GHC_MODULES, ghcSources, hsPath } from './toolchain-projects.js';

const KEEP = process.env.NBC_TOOLCHAINS_KEEP === '1';
const VERBOSE = process.env.NBC_TOOLCHAINS_VERBOSE === '1';
const ONLY = process.env.NBC_TOOLCHAINS_ONLY;

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= f());
}

const tail = (text: string, lines = 15) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** What one build redid, read from the tool's output. */
interface ToolOutput {
  /** Units compiled (crates, modules), sorted. */
  compiled: string[];
  /** Programs linked, sorted. */
  linked: string[];
  /** The tool's own reasons for rebuilding (cargo -v "Dirty" lines). */
  explain: string[];
}

interface Edit {
  label: string;
  apply: (files: SourceTree) => SourceTree;
}

interface Toolchain {
  name: string;
  /** The tool's versions, for the summary. */
  version: string;
  /** The --cache-dir, relative to the source root. */
  cacheDir: string;
  /** Every unit, sorted: what a cold build compiles. */
  units: string[];
  /** What a cold build links. */
  allLinks: string[];
  sources: (scratch: string) => Promise<SourceTree>;
  build: { command: string; args: string[]; env: Record<string, string> };
  parse: (stdout: string, stderr: string) => ToolOutput;
  /** Files whose bytes must equal a clean build's at the same path. */
  outputs: string[];
  /**
   * Files whose bytes depend on what earlier builds in the tree did, not only on the sources and
   * the path (GHC's link order): a warm build's must equal the in-place build's of the same change
   * from the same start, at the same path. At another path only the program's output is compared.
   */
  historyOutputs?: string[];
  program: string;
  /** Edit 1, edit 2 (S0 → S1 → S2); B builds S2 with edit 1's unit edited again (`again`). */
  edits: [Edit, Edit];
  again: Edit;
  /** What the tool itself recompiles for edit 1 and 2 in place (checked in the control). */
  expected: [string[], string[]];
  /** Files outside the tree that restored artifacts must be newer than (GHC's libraries). */
  olderThanArtifacts?: () => string[];
}

interface Step extends ToolOutput {
  root: string;
  failed?: string;
  transcript: string[];
  report?: { outcome: string; hit?: { name: string }; attempts: { name: string; result: string; reason?: string }[]; warnings: string[] };
  settle: string;
  save?: string;
  outputs: Record<string, Buffer>;
  programOutput?: string;
  /** After restore, before the build: mtimes (ms) of the files under the cache dir. */
  restoredTimes?: { min: number; max: number; count: number };
  seconds: number;
  buildSeconds: number;
}

interface Driver {
  work: string;
  store: string;
}

let stateCounter = 0;

function collectOutputs(root: string, tc: Toolchain): Record<string, Buffer> {
  const outputs: Record<string, Buffer> = {};
  for (const path of [...tc.outputs, ...tc.historyOutputs ?? []]) if (existsSync(join(root, path))) outputs[path] = readFileSync(join(root, path));
  return outputs;
}

function newStep(root: string): Step {
  return { root, transcript: [], settle: 'not run', outputs: {}, compiled: [], linked: [], explain: [], seconds: 0, buildSeconds: 0 };
}

function mtimesBelow(dir: string): Step['restoredTimes'] {
  if (!existsSync(dir)) return { min: 0, max: 0, count: 0 };
  const times = listFiles(dir).map((p) => lstatSync(join(dir, p)).mtimeMs);
  return { min: Math.min(...times), max: Math.max(...times), count: times.length };
}

async function runBuild(tc: Toolchain, root: string, step: Step): Promise<boolean> {
  const started = Date.now();
  const r = await runCommand(tc.build.command, tc.build.args, { cwd: root, env: tc.build.env });
  step.buildSeconds = (Date.now() - started) / 1000;
  step.transcript.push(`$ ${tc.build.command} ${tc.build.args.join(' ')} -> ${r.code} (${step.buildSeconds.toFixed(1)} s)\n${tail(r.stdout + r.stderr, VERBOSE ? 60 : 15)}`);
  Object.assign(step, tc.parse(r.stdout, r.stderr));
  if (r.code !== 0) step.failed ??= 'build';
  return r.code === 0;
}

async function runProgram(tc: Toolchain, root: string, step: Step): Promise<void> {
  if (!existsSync(join(root, tc.program))) return;
  const run = await runCommand(join(root, tc.program), [], { cwd: root });
  if (run.code === 0) step.programOutput = run.stdout;
  else step.transcript.push(`$ ${tc.program} -> ${run.code}\n${tail(run.stderr)}`);
}

/**
 * One build in a fresh tree at `root`. With `cacheName`: restore → settle → build → save, as the Nix
 * wrapper does (neither toolchain has a configure step). Without: the build only (a clean build).
 */
async function freshBuild(driver: Driver, tc: Toolchain, root: string, files: SourceTree, cacheName?: string): Promise<Step> {
  const started = Date.now();
  writeSources(root, files);
  const id = `${tc.name}-${++stateCounter}`;
  const stateDir = join(driver.work, 'state', id);
  const json = join(driver.work, 'state', `${id}.json`);
  mkdirSync(dirname(stateDir), { recursive: true });
  const step = newStep(root);
  let mark = Date.now();
  const record = (label: string, r: CliResult) => {
    step.transcript.push(`$ ${label} -> ${r.code} (${((Date.now() - mark) / 1000).toFixed(1)} s)\n${tail(r.stdout + r.stderr)}`);
    mark = Date.now();
    if (r.code !== 0 && step.failed === undefined) step.failed = label;
    return r.code === 0;
  };
  const finish = () => Object.assign(step, { outputs: collectOutputs(root, tc), seconds: (Date.now() - started) / 1000 });
  const cacheArgs = cacheName === undefined ? []
    : ['--store', driver.store, '--cache-name', cacheName, '--cache-dir', tc.cacheDir, '--state-dir', stateDir];
  if (cacheName !== undefined) {
    if (!record('restore', await runCli(['restore', ...cacheArgs, '--json', json, '--explain'], { cwd: root }))) return finish();
    step.report = JSON.parse(readFileSync(json, 'utf8')) as Step['report'];
    step.restoredTimes = mtimesBelow(join(root, tc.cacheDir));
    mark = Date.now();
    const s = await settle(root, tc.cacheDir, stateDir);
    step.settle = s.status;
    if (s.result) record('settle', s.result);
  }
  if (!await runBuild(tc, root, step)) return finish();
  mark = Date.now();
  if (cacheName !== undefined) {
    const saved = await runCli([...['save', ...cacheArgs], '--json', `${json}.save`], { cwd: root });
    if (record('save', saved)) step.save = (JSON.parse(readFileSync(`${json}.save`, 'utf8')) as { outcome: string }).outcome;
  }
  await runProgram(tc, root, step);
  return finish();
}

/** Builds again in place, no cache (after writing the files `to` has that differ from `from`, with a fresh mtime). */
async function inPlaceRebuild(tc: Toolchain, root: string, from?: SourceTree, to?: SourceTree): Promise<Step> {
  const started = Date.now();
  if (from && to) {
    for (const [path, data] of Object.entries(to)) {
      if (from[path] === data) continue;
      writeFileSync(join(root, path), typeof data === 'string' ? data : data.data);
      const now = new Date();
      utimesSync(join(root, path), now, now);
    }
  }
  const step = newStep(root);
  await runBuild(tc, root, step);
  await runProgram(tc, root, step);
  return Object.assign(step, { outputs: collectOutputs(root, tc), seconds: (Date.now() - started) / 1000 });
}

// ---------------------------------------------------------------------------------------------
// The toolchains.

async function which(command: string): Promise<boolean> {
  return (await runCommand('sh', ['-c', `command -v ${command}`])).code === 0;
}

const baseEnv = (work: string, extra: Record<string, string> = {}) =>
  ({ HOME: work, LC_ALL: 'C', TMPDIR: process.env.TMPDIR ?? '/tmp', ...extra });

/**
 * Cargo from the toolchain's own bin directory (rustup's proxies would look for ~/.rustup under the
 * test's HOME), CARGO_HOME in the work dir, offline.
 */
async function cargoToolchain(work: string, incremental: '0' | '1'): Promise<Toolchain> {
  const sysroot = (await runCommand('rustc', ['--print', 'sysroot'], { env: { HOME: process.env.HOME ?? '/root' } })).stdout.trim();
  const bin = join(sysroot, 'bin');
  const env = baseEnv(work, {
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, RUSTC: join(bin, 'rustc'), CARGO_HOME: join(work, 'cargo-home'),
    CARGO_INCREMENTAL: incremental, CARGO_TERM_COLOR: 'never', CARGO_TERM_PROGRESS_WHEN: 'never', CARGO_NET_OFFLINE: 'true',
  });
  const cargo = join(bin, 'cargo');
  const version = async (tool: string) => (await runCommand(join(bin, tool), ['--version'], { env })).stdout.trim();
  return {
    name: `cargo-inc${incremental}`, version: `${await version('cargo')}; ${await version('rustc')}; CARGO_INCREMENTAL=${incremental}`, cacheDir: 'target', units: CARGO_CRATES, allLinks: ['app'],
    sources: (scratch) => cargoSources(join(scratch, 'lockfile'), cargo, env),
    build: { command: cargo, args: ['build', '--offline', '-v'], env },
    parse: (_stdout, stderr) => {
      const lines = stderr.split('\n');
      const pick = (re: RegExp) => lines.map((l) => re.exec(l)?.[1]).filter((x): x is string => x !== undefined).sort();
      return {
        compiled: pick(/^\s*Compiling (\S+) v/),
        // rustc links when it makes a bin crate.
        linked: pick(/^\s*Running `.*--crate-name (\S+) .*--crate-type bin/),
        explain: lines.filter((l) => /^\s*Dirty /.test(l)).map((l) => l.trim()),
      };
    },
    // With CARGO_INCREMENTAL=1 the rlibs are not reproducible even between two clean builds at the same
    // path: their members are named after the incremental session (base-<hash>.<cgu>.<session>.rcgu.o,
    // the session part differs every build), so only the program is compared there.
    outputs: incremental === '0' ? ['target/debug/app', 'target/debug/libengine.rlib', 'target/debug/libbase.rlib'] : ['target/debug/app'],
    program: 'target/debug/app',
    edits: [
      { label: 'engine/e2.rs', apply: (f) => editRust(f, 'crates/engine/src/e2.rs', 1) },
      { label: 'app/a2.rs', apply: (f) => editRust(f, 'crates/app/src/a2.rs', 1) },
    ],
    again: { label: 'engine/e2.rs again', apply: (f) => editRust(f, 'crates/engine/src/e2.rs', 2) },
    // A crate is the unit: an edit recompiles its crate and every crate depending on it, nothing else.
    expected: [['app', 'engine'], ['app']],
  };
}

function ghcLibraryFiles(libdir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      const stat = lstatSync(full);
      if (stat.isDirectory()) visit(full);
      else if (stat.isFile() && /\.(a|so|hi|dyn_hi|conf)$/.test(name)) out.push(full);
    }
  };
  visit(libdir);
  return out;
}

async function ghcToolchain(work: string): Promise<Toolchain> {
  const libdir = (await runCommand('ghc', ['--print-libdir'])).stdout.trim();
  const env = baseEnv(work);
  return {
    name: 'ghc', version: `ghc ${(await runCommand('ghc', ['--numeric-version'])).stdout.trim()}`, cacheDir: 'build', units: GHC_MODULES, allLinks: ['prog'],
    sources: async () => ghcSources(),
    // GHC 9.0 wants the directory of -o to exist before it starts (-outputdir alone is created).
    build: { command: 'sh', args: ['-c', 'mkdir -p build && exec ghc --make -outputdir build -o build/prog Main.hs'], env },
    parse: (stdout) => {
      const lines = stdout.split('\n');
      return {
        compiled: lines.map((l) => /^\[\s*\d+ of \d+\] Compiling (\S+)/.exec(l)?.[1]).filter((x): x is string => x !== undefined).sort(),
        linked: lines.map((l) => /^Linking build\/(\S+) \.\.\./.exec(l)?.[1]).filter((x): x is string => x !== undefined).sort(),
        explain: [],
      };
    },
    // Two clean builds at one path are byte-identical, and every .hi of a warm build is the same as a
    // clean build's. Objects and the program are not: they depend on the tree's history, also in
    // place without any cache. (1) A partial rebuild links in another order: GHC 9.0's --make passes
    // the modules it recompiled, and those after them in the graph, after the ones it skipped
    // (Base M01 M02 M03 T01..T06 M04..M08 Top Main after an edit of M04; Base M01..M08 T01..T06 Top
    // Main clean), so build/prog differs in its build-id and ~125,000 bytes. (2) A module's object
    // holds local labels numbered from the session's name cache (Main.o: c2ic_str after a clean build
    // of S0, c2ij_str after one of S2, where only Leaf.T03 gained a binding), so a module GHC rightly
    // skips keeps the object of the build that made it. So the objects and the program are compared
    // with the in-place builds of the same edits from the same start, at the same path (`replay`),
    // and with a clean build by what the program prints.
    outputs: GHC_MODULES.map((m) => `build/${hsPath(m).replace(/\.hs$/, '.hi')}`),
    historyOutputs: [...GHC_MODULES.map((m) => `build/${hsPath(m).replace(/\.hs$/, '.o')}`), 'build/prog'], program: 'build/prog',
    edits: [
      { label: 'Core.M04 (value)', apply: (f) => editHaskellValue(f, 'Core.M04', 1) },
      { label: 'Leaf.T03 (new export)', apply: (f) => editHaskellExport(f, 'Leaf.T03') },
    ],
    again: { label: 'Core.M04 again (value)', apply: (f) => editHaskellValue(f, 'Core.M04', 2) },
    // -O0: a value change leaves the interface as it was (no unfoldings), so importers are skipped;
    // a new export changes it, so the direct importer recompiles (its own interface stays the same).
    expected: [['Core.M04'], ['App.Top', 'Leaf.T03']],
    olderThanArtifacts: () => ghcLibraryFiles(libdir),
  };
}

// ---------------------------------------------------------------------------------------------

const describe = (step: Step) => (step.failed === undefined ? '' : `failed at ${step.failed}:\n${step.transcript.at(-1) ?? ''}`);
const units = (list: string[], all: string[]) => (list.length === all.length && list.length > 0 ? 'ALL' : `[${list.join(',')}]`);

function defineSuite(label: string, make: (work: string) => Promise<Toolchain>): void {
  const test = suite(`${label}: exact warm builds`);
  let driver: Driver;
  let remove: () => Promise<void>;
  let tc: Toolchain;
  let A: string;
  let B: string;
  const summary: string[] = [];
  const note = (what: string, step: Step, extra = '') => {
    summary.push(`${what.padEnd(15)} ${step.failed ? `FAILED(${step.failed})` : 'ok'} restore=${step.report?.outcome ?? '-'} save=${step.save ?? '-'} `
      + `compiled=${units(step.compiled, tc.units)} linked=[${step.linked.join(',')}] build ${step.buildSeconds.toFixed(1)}s total ${step.seconds.toFixed(1)}s ${extra}`);
    for (const e of step.explain) summary.push(`    ${e}`);
    if (VERBOSE) summary.push(...step.transcript.map((t) => `    ${t.replace(/\n/g, '\n    ')}`));
  };

  let suiteStarted = 0;
  test.before(async () => {
    suiteStarted = Date.now();
    const made = await tempDir(`nbc-tc-${label}-`);
    remove = made.remove;
    driver = { work: made.dir, store: join(made.dir, 'store') };
    tc = await make(made.dir);
    A = join(made.dir, 'a', 'src');
    B = join(made.dir, 'relocated-elsewhere', 'source');
  });
  test.after(async () => {
    if (VERBOSE && existsSync(join(B, tc.cacheDir))) {
      const inTree = filesContaining(join(B, tc.cacheDir), B);
      summary.push(`files under ${tc.cacheDir} at B containing B: text [${inTree.text.length}] binary [${inTree.binary.slice(0, 8).join(', ')}${inTree.binary.length > 8 ? ', ...' : ''}]`);
    }
    console.log(`\n[${tc.name}] ${tc.version}; ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s\n  ${summary.join('\n  ')}`);
    if (KEEP) console.log(`  kept ${driver.work}`);
    else await remove();
  });

  const name = `tc-${label}`;
  const s0 = once(async () => await tc.sources(driver.work));
  const s1 = once(async () => tc.edits[0].apply(await s0()));
  const s2 = once(async () => tc.edits[1].apply(await s1()));
  const s3 = once(async () => tc.again.apply(await s2()));

  const cold = once(async () => {
    const step = await freshBuild(driver, tc, A, await s0(), name);
    note('cold A', step);
    return step;
  });
  const control = once(async () => {
    const tree = (await cold()).root;
    const edit1 = await inPlaceRebuild(tc, tree, await s0(), await s1());
    note(`in-place edit 1`, edit1, tc.edits[0].label);
    const noop = await inPlaceRebuild(tc, tree);
    note('in-place no-op', noop);
    const edit2 = await inPlaceRebuild(tc, tree, await s1(), await s2());
    note('in-place edit 2', edit2, tc.edits[1].label);
    return { edit1, noop, edit2 };
  });
  /** For the summary: whether each history-dependent output equals the clean build's anyway. */
  const vsClean = (step: Step, clean: Step) => {
    if (!tc.historyOutputs) return '';
    const differ = tc.historyOutputs.filter((p) => !(step.outputs[p] && clean.outputs[p] && step.outputs[p]!.equals(clean.outputs[p]!)));
    return `differ from clean: [${differ.map((p) => p.split('/').at(-1)).join(',')}]`;
  };
  const cleanA1 = once(async () => {
    await control();
    const step = await freshBuild(driver, tc, A, await s1());
    note('clean A S1', step);
    return step;
  });
  const warmA1 = once(async () => {
    await cleanA1();
    const step = await freshBuild(driver, tc, A, await s1(), name);
    note('warm A S1', step, `${tc.edits[0].label} ${vsClean(step, await cleanA1())}`);
    return step;
  });
  const noopA = once(async () => {
    await warmA1();
    const step = await freshBuild(driver, tc, A, await s1(), name);
    const t = step.restoredTimes;
    const times = t ? `; ${t.count} files under ${tc.cacheDir} after restore: mtimes ${new Date(t.min).toISOString()}..${new Date(t.max).toISOString()}` : '';
    note('no-op A S1', step, `${vsClean(step, await cleanA1())}${times}`);
    return step;
  });
  const cleanA2 = once(async () => {
    await noopA();
    const step = await freshBuild(driver, tc, A, await s2());
    note('clean A S2', step);
    return step;
  });
  const warmA2 = once(async () => {
    await cleanA2();
    const step = await freshBuild(driver, tc, A, await s2(), name);
    note('warm A S2', step, `${tc.edits[1].label} ${vsClean(step, await cleanA2())}`);
    return step;
  });
  /** Where outputs depend on history: the same builds as at A, in place at B without a cache (S0 clean, then S1, S2, S3). */
  const replayB = once(async () => {
    await warmA2();
    rmSync(A, { recursive: true, force: true }); // as in Nix: the first build's directory is gone
    if (!tc.historyOutputs) return undefined;
    const start = await freshBuild(driver, tc, B, await s0());
    await inPlaceRebuild(tc, B, await s0(), await s1());
    await inPlaceRebuild(tc, B, await s1(), await s2());
    const step = await inPlaceRebuild(tc, B, await s2(), await s3());
    step.seconds += start.seconds;
    note('replay B S0..3', step, `(in place: ${tc.again.label})`);
    return step;
  });
  const cleanB = once(async () => {
    await replayB();
    const step = await freshBuild(driver, tc, B, await s3());
    note('clean B S3', step);
    return step;
  });
  let bOutcome = '';
  const warmB = once(async () => {
    await cleanB();
    const step = await freshBuild(driver, tc, B, await s3(), name);
    const r = step.report;
    bOutcome = r?.outcome === 'hit' ? 'hit (relocated)'
      : `miss: ${r?.attempts.map((a) => `${a.name} ${a.result}${a.reason ? ` (${a.reason})` : ''}`).join('; ') ?? 'no report'}`;
    note('warm B S3', step, `${tc.again.label}; ${bOutcome} ${vsClean(step, await cleanB())}`);
    return step;
  });

  /** Outputs equal to a clean build's at the same path; history-dependent ones equal to `inPlace`'s (the same edit in place). */
  const sameOutputs = (step: Step, clean: Step, inPlace?: Step) => {
    assert.is(clean.failed, undefined, `the clean build: ${describe(clean)}`);
    const why = step.failed === undefined ? '' : ` (the build ${describe(step)})`;
    const compare = (path: string, other: Step, what: string) => {
      assert.ok(other.outputs[path], `the ${what} made ${path}`);
      assert.ok(step.outputs[path], `${path} exists${why}`);
      assert.ok(step.outputs[path]!.equals(other.outputs[path]!), `${path} is byte-identical to the ${what}'s at the same path${why}`);
    };
    for (const path of tc.outputs) compare(path, clean, 'clean build');
    if (inPlace) for (const path of tc.historyOutputs ?? []) compare(path, inPlace, 'in-place build of the same edit');
    assert.ok(step.programOutput !== undefined, `the program ran${why}`);
    assert.is(step.programOutput, clean.programOutput, 'the program prints the same as a clean build');
  };
  const succeededWith = (step: Step, outcome: string) => {
    assert.is(step.failed, undefined, describe(step));
    assert.is(step.report?.outcome, outcome, `restore: ${step.transcript[0] ?? ''}`);
  };

  test('cold build at A: succeeds, restore misses, compiles every unit once, links the program', async () => {
    const step = await cold();
    succeededWith(step, 'miss');
    assert.equal(step.compiled, tc.units);
    assert.equal(step.linked, tc.allLinks);
    assert.match(step.programOutput ?? '', /^toolchains \d+\n$/);
  });

  test('in-place control, no cache: each edit recompiles what the tool decides (as expected) and relinks; a rebuild does nothing', async () => {
    const { edit1, noop, edit2 } = await control();
    assert.is(edit1.failed, undefined, describe(edit1));
    assert.is(edit2.failed, undefined, describe(edit2));
    assert.equal(edit1.compiled, tc.expected[0]);
    assert.equal(edit2.compiled, tc.expected[1]);
    assert.equal(edit1.linked, tc.allLinks);
    assert.equal(edit2.linked, tc.allLinks);
    assert.equal(noop.compiled, []);
    assert.equal(noop.linked, []);
  });

  test('warm build at A after edit 1: restore hits; compiles and links exactly what the in-place build did', async () => {
    const step = await warmA1();
    succeededWith(step, 'hit');
    const { edit1 } = await control();
    assert.equal(step.compiled, edit1.compiled);
    assert.equal(step.linked, edit1.linked);
  });

  test('warm build at A after edit 1: outputs byte-identical to a clean build at A (history-dependent ones: to the in-place build)', async () => {
    sameOutputs(await warmA1(), await cleanA1(), (await control()).edit1);
  });

  test('no-op warm build at A: restore hits; compiles nothing, links nothing; outputs byte-identical', async () => {
    const step = await noopA();
    succeededWith(step, 'hit');
    assert.equal(step.compiled, []);
    assert.equal(step.linked, []);
    sameOutputs(step, await cleanA1(), (await control()).edit1);
  });

  test('warm build at A after edit 2: restore hits; compiles and links exactly what the in-place build did', async () => {
    const step = await warmA2();
    succeededWith(step, 'hit');
    const { edit2 } = await control();
    assert.equal(step.compiled, edit2.compiled);
    assert.equal(step.linked, edit2.linked);
    sameOutputs(step, await cleanA2(), (await control()).edit2);
  });

  if (label === 'ghc') {
    test('restored artifacts are newer than every GHC library file (GHC relinks when a library is newer than the program)', async () => {
      const step = await noopA();
      const libs = tc.olderThanArtifacts!();
      const newest = Math.max(...libs.map((p) => statSync(p).mtimeMs));
      assert.ok(step.restoredTimes && step.restoredTimes.count > 0, 'restore put artifacts in place');
      assert.ok(step.restoredTimes.min > newest,
        `oldest restored artifact ${new Date(step.restoredTimes.min).toISOString()} vs newest of ${libs.length} library files ${new Date(newest).toISOString()}`);
    });
  }

  test('warm build at B (cache saved at A): succeeds; an exact relocated hit or a miss with a reason and a full build', async () => {
    const step = await warmB();
    assert.is(step.failed, undefined, describe(step));
    assert.ok(step.report, 'restore wrote its report');
    if (step.report.outcome === 'hit') {
      const { edit1 } = await control();
      assert.equal(step.compiled, edit1.compiled, `relocated hit: ${bOutcome}`);
      assert.equal(step.linked, edit1.linked);
    } else {
      assert.is(step.report.outcome, 'miss');
      assert.ok(step.report.attempts.some((a) => a.reason), `a miss says why: ${bOutcome}`);
      assert.equal(step.compiled, tc.units);
      assert.equal(step.linked, tc.allLinks);
    }
  });

  test('warm build at B: outputs byte-identical to a clean build at B (history-dependent ones: to the same builds in place at B)', async () => {
    sameOutputs(await warmB(), await cleanB(), await replayB());
  });

  test.run();
}

function missing(label: string, why: string): void {
  const test = suite(`${label}: exact warm builds`);
  test('the toolchain is installed', () => { assert.unreachable(why); });
  test.run();
}

const wanted = (name: string) => ONLY === undefined || ONLY === name;
if (wanted('cargo')) {
  if (await which('cargo')) {
    defineSuite('cargo-inc0', (work) => cargoToolchain(work, '0'));
    defineSuite('cargo-inc1', (work) => cargoToolchain(work, '1'));
  } else missing('cargo', 'cargo is not on PATH');
}
if (wanted('ghc')) {
  if (await which('ghc')) defineSuite('ghc', ghcToolchain);
  else missing('ghc', 'ghc is not on PATH (apt-get install -y ghc)');
}
