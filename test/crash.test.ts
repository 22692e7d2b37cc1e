// Crash safety with real SIGKILLs, no sleeps and no hooks in the product: strace's fault injection
// kills restore and save at >= 20 calls spread over a run (see kill-points.ts for how a point is
// chosen and hit), then a build must come out exactly as a clean build of the same sources.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, expectedOutput, parseMakeOutput, unitName, type CProjectOptions } from '../bench/c-project.js';
import { nixLikeBuild } from './build.js';
import { CLI, execFileAsync, runCli, tempDir, writeTree } from './helpers.js';
import {
  buildProfile, killArgs, landedAsPlanned, landing, mapLimit, spawnWithSignal, spreadPoints, straceWorks, traceArgs,
  type KillPoint, type Profile, type Roots,
} from './kill-points.js';

const test = suite('crash safety: SIGKILL (strace fault injection) at points spread over restore and save');

const UNITS = 20;
/** Kill points per command; NBC_CRASH_POINTS=1000 kills at every call that can be hit. */
const POINTS = Number(process.env.NBC_CRASH_POINTS ?? 21);
const NAME = 'crash';
const PROJECT: CProjectOptions = { units: UNITS };
// One libuv thread and one worker: strace counts calls per thread, so the calls a point names
// must land on the same thread in every run (the product code is the same at any thread count).
const DETERMINISTIC = { UV_THREADPOOL_SIZE: '1', NBC_THREADS: '1' };
/** Kill points run side by side, each in its own tree (and store copy). */
const LANES = 4;

let work: string;
let store: string;
let logs: string;
let removeWork: () => Promise<void>;
let strace = false;
let files: Record<string, string>;
let edited: Record<string, string>;
let cleanProgram: Buffer;
let expected: string;

interface Tree {
  top: string;
  root: string;
}

async function freshTree(sources: Record<string, string>): Promise<Tree> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, sources);
  return { top, root };
}

const restoreArgs = (tree: Tree) => ['restore', '--cache-name', NAME, '--cache-dir', 'obj', '--json', join(tree.top, 'restore.json')];
const saveArgs = ['save', '--cache-name', NAME, '--cache-dir', 'obj'];
const buildEnv = (tree: Tree, storeDir: string) => ({ NBC_STORE: storeDir, NIX_BUILD_TOP: tree.top, ...DETERMINISTIC });

let logCount = 0;
const nextLog = () => join(logs, `${++logCount}.log`);

/** Runs the CLI under strace: traced only (profile) or killed at `point`. */
async function traced(tree: Tree, args: string[], storeDir: string, point?: KillPoint) {
  const log = nextLog();
  const roots: Roots = { top: tree.top, store: storeDir };
  const strArgs = point ? killArgs(point, roots, log) : traceArgs(log);
  const run = await spawnWithSignal('strace', [...strArgs, process.execPath, CLI, ...args], { cwd: tree.root, env: buildEnv(tree, storeDir) });
  if (!existsSync(log)) throw new Error(`strace ${strArgs.join(' ')} did not run: ${run.stderr.trim()}`);
  return { ...run, log, roots, landed: point ? landing(point, roots, log) : undefined };
}

/** make, then the program against a clean build of the edited sources: `problem` says what differs. */
async function makeAndCompare(root: string): Promise<{ problem?: string; compiled: string }> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('make', ['-j4'], { cwd: root }));
  } catch (error) {
    return { problem: `make failed: ${(error as { stderr?: string }).stderr?.trim().split('\n').pop()}`, compiled: '' };
  }
  const made = parseMakeOutput(stdout);
  const compiled = `${made.compiled.length} compiled${made.linked ? ', linked' : ''}`;
  const program = readFileSync(join(root, 'obj/prog'));
  const { stdout: output } = await execFileAsync(join(root, 'obj/prog'));
  if (!program.equals(cleanProgram) || output !== expected) {
    return { problem: `stale program: prints ${output.trim()} (want ${expected.trim()}), bytes ${program.equals(cleanProgram) ? 'equal' : 'differ'}`, compiled };
  }
  return { compiled };
}

interface Row {
  point: KillPoint;
  killed: boolean;
  landed: string | undefined;
  compiled: string;
  note?: string;
  problem?: string;
}

function table(title: string, rows: readonly Row[]): void {
  console.log(`\n${title}`);
  for (const row of rows) {
    const where = landedAsPlanned(row.point, row.landed) ? '' : ` (landed: ${row.landed ?? 'nowhere'})`;
    console.log(`  N=${String(row.point.n).padStart(3)}/${row.point.total} ${row.killed ? 'KILLED' : 'lived '} `
      + `${row.point.label}${row.point.path ? '' : ` [when=${row.point.when} in its thread]`}${where}: `
      + `${row.problem ? `FAIL ${row.problem}` : 'ok'} [${row.compiled}]${row.note ? ` | ${row.note}` : ''}`);
  }
}

/** Kills that happened where planned: most must, or the points do not mean what they say. */
function assertKills(rows: readonly Row[]): void {
  const good = rows.filter((r) => r.killed && landedAsPlanned(r.point, r.landed)).length;
  assert.ok(rows.length >= 20, `only ${rows.length} kill points`);
  assert.ok(good >= rows.length * 0.8, `only ${good} of ${rows.length} runs were killed at the planned call`);
}

function assertNoProblems(rows: readonly Row[]): void {
  const failed = rows.filter((r) => r.problem);
  assert.ok(failed.length === 0, `${failed.length} of ${rows.length} kill points end in a wrong build:\n${failed
    .map((r) => `  N=${r.point.n} ${r.point.label}: ${r.problem}`).join('\n')}`);
}

function summary(profile: Profile, points: readonly KillPoint[]): string {
  const counts = Object.entries(profile.counts).map(([name, count]) => `${name} ${count}`).join(', ');
  return `${profile.events.length} calls touch the build or the store (${counts}); ${profile.targetable} can be hit exactly; killing at ${points.length}`;
}

async function profileOf(args: (tree: Tree) => string[], tree: () => Promise<Tree>, storeDir: () => string): Promise<Profile> {
  const runs = [];
  for (let i = 0; i < 2; i++) {
    const t = await tree();
    const run = await traced(t, args(t), storeDir());
    assert.is(run.code, 0, run.stderr);
    runs.push(run);
  }
  return buildProfile({ log: runs[0]!.log, roots: runs[0]!.roots }, { log: runs[1]!.log, roots: runs[1]!.roots });
}

test.before(async () => {
  ({ dir: work, remove: removeWork } = await tempDir('nbc-crash-'));
  store = join(work, 'store');
  logs = join(work, 'logs');
  mkdirSync(logs);
  strace = await straceWorks();
  assert.ok(strace, 'strace with fault injection is needed for these tests (apt-get install strace)');
  files = cProject(PROJECT);
  const changedUnit = `${unitName(3)}.c`;
  edited = {
    ...files,
    [changedUnit]: files[changedUnit]!.replace('return 3 * SCALE', 'return 3 * SCALE + 1000'),
    'group2.h': '#define GROUP_2 250\n',
  };
  assert.is.not(edited[changedUnit], files[changedUnit]);
  expected = `${Number(expectedOutput(PROJECT)) + 1000 + 4 * 50}\n`;
  const clean = await freshTree(edited);
  await execFileAsync('make', ['-j4'], { cwd: clean.root });
  cleanProgram = readFileSync(join(clean.root, 'obj/prog'));
  assert.is((await execFileAsync(join(clean.root, 'obj/prog'))).stdout, expected);
  const cold = await nixLikeBuild(work, { NBC_STORE: store, ...DETERMINISTIC }, files, NAME);
  assert.is(cold.report.outcome, 'miss');
});
test.after(() => removeWork());

let restorePoints: KillPoint[] = [];

test('restore killed at each point, then make: the build equals a clean one', async () => {
  const started = Date.now();
  // The profile: two uninterrupted restores of the edited sources, traced.
  const profile = await profileOf(restoreArgs, () => freshTree(edited), () => store);
  restorePoints = spreadPoints(profile, POINTS);
  const rows = await mapLimit(restorePoints, LANES, async (point): Promise<Row> => {
    const tree = await freshTree(edited);
    const run = await traced(tree, restoreArgs(tree), store, point);
    return { point, killed: run.signal === 'SIGKILL', landed: run.landed, ...await makeAndCompare(tree.root) };
  });
  console.log(`\nrestore: ${summary(profile, restorePoints)}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  table('restore killed, then make:', rows);
  assertKills(rows);
  assertNoProblems(rows);
});

test('restore killed at each point, restore again in the same tree, then make: the build equals a clean one', async () => {
  const started = Date.now();
  const rows = await mapLimit(restorePoints, LANES, async (point): Promise<Row> => {
    const tree = await freshTree(edited);
    const run = await traced(tree, restoreArgs(tree), store, point);
    const again = await runCli(restoreArgs(tree), { cwd: tree.root, env: buildEnv(tree, store) });
    const said = again.stderr.trim().split('\n').map((line) => line.replace(/^nix-build-cache:? /, '')).join(' / ');
    const row: Row = { point, killed: run.signal === 'SIGKILL', landed: run.landed, note: `2nd restore: ${said}`, ...await makeAndCompare(tree.root) };
    if (again.code !== 0) row.problem = `second restore exited ${again.code}`;
    return row;
  });
  console.log(`\n${((Date.now() - started) / 1000).toFixed(1)} s`);
  table('restore killed, restore again, then make:', rows);
  assertKills(rows);
  assertNoProblems(rows);
});

/** Every file below dir, relative, sorted; in a store, leaving out the events for stats and the records of restores. */
function filesBelow(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((p) => statSync(join(dir, p)).isFile() && p !== '.events.jsonl' && !p.endsWith('.restored')).sort();
}

test('save killed at each point: no partial object under a cache name, and restore + make equals a clean build', async () => {
  const started = Date.now();
  // A build per lane (restore of the cold cache, make of the edited sources) is saved again and
  // again, each time into a fresh copy of the store as the cold build left it.
  const builds = await Promise.all(Array.from({ length: LANES }, async () => {
    const build = await freshTree(edited);
    assert.is((await runCli(restoreArgs(build), { cwd: build.root, env: buildEnv(build, store) })).code, 0);
    await execFileAsync('make', ['-j4'], { cwd: build.root });
    return build;
  }));
  const [oldKey, ...others] = filesBelow(store);
  assert.ok(oldKey !== undefined && others.length === 0, 'the cold build saved one archive');
  const oldArchive = readFileSync(join(store, oldKey!));
  let copies = 0;
  const storeCopy = () => {
    const copy = join(work, `store-${++copies}`);
    cpSync(store, copy, { recursive: true, preserveTimestamps: true });
    return copy;
  };
  const profile = await profileOf(() => saveArgs, async () => builds[0]!, storeCopy);
  const points = spreadPoints(profile, POINTS);
  // What a restore + make of an archive gives depends on its bytes only: each distinct one once.
  const verified = new Map<string, Promise<{ problems: string[]; compiled: string }>>();
  const verify = (storeDir: string, archive: Buffer) => {
    const digest = createHash('sha256').update(archive).digest('hex');
    if (!verified.has(digest)) {
      verified.set(digest, (async () => {
        const problems: string[] = [];
        // The name restores cleanly (strict: any cache problem is an error) and the build is right.
        const tree = await freshTree(edited);
        const restored = await runCli([...restoreArgs(tree), '--strict'], { cwd: tree.root, env: buildEnv(tree, storeDir) });
        if (restored.code !== 0) problems.push(`strict restore failed: ${restored.stderr.trim().split('\n').pop()}`);
        else {
          const { outcome, warnings } = JSON.parse(readFileSync(join(tree.top, 'restore.json'), 'utf8')) as { outcome: string; warnings: string[] };
          if (outcome !== 'hit' || warnings.length > 0) problems.push(`restore: ${outcome} ${warnings.join('; ')}`);
        }
        const made = await makeAndCompare(tree.root);
        if (made.problem) problems.push(made.problem);
        return { problems, compiled: made.compiled };
      })());
    }
    return verified.get(digest)!;
  };
  const free = [...builds];
  const rows = await mapLimit(points, LANES, async (point): Promise<Row> => {
    const build = free.pop()!;
    const storeDir = storeCopy();
    let run;
    try {
      run = await traced(build, saveArgs, storeDir, point);
    } finally {
      free.push(build);
    }
    const row: Row = { point, killed: run.signal === 'SIGKILL', landed: run.landed, compiled: '' };
    const report = `${storeDir}.ls.json`;
    const listed = await runCli(['ls', '--store', storeDir, '--json', report], { cwd: work });
    const caches = listed.code === 0 ? (JSON.parse(readFileSync(report, 'utf8')) as { caches: { name: string; key: string }[] }).caches : [];
    const keys = caches.map((c) => c.key);
    const leftovers = filesBelow(storeDir).filter((p) => !keys.includes(p));
    const objects = caches.map((c) => (readFileSync(join(storeDir, c.key)).equals(oldArchive) ? `${c.key}: old` : `${c.key}: new`));
    row.note = `store: ${objects.join(', ') || 'empty'}${leftovers.length ? `; not listed: ${leftovers.join(', ')}` : ''}`;
    const problems: string[] = [];
    if (listed.code !== 0) problems.push(`ls exited ${listed.code}: ${listed.stderr.trim()}`);
    if (keys.length !== 1 || keys[0] !== oldKey) problems.push(`listed keys: ${keys.join(', ') || 'none'} (want ${oldKey})`);
    for (const key of keys) {
      const result = await verify(storeDir, readFileSync(join(storeDir, key)));
      problems.push(...result.problems);
      row.compiled = result.compiled;
    }
    if (problems.length > 0) row.problem = problems.join('; ');
    return row;
  });
  console.log(`\nsave: ${summary(profile, points)}; ${verified.size} distinct archives restored and built; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  table('save killed, then ls, restore --strict, make:', rows);
  assertKills(rows);
  assertNoProblems(rows);
});

test.run();
