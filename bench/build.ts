// Question: what does the cache buy on a real build? A generated C project of ~400 files built with
// make through the CLI on a local store, each build in a fresh directory as Nix would: cold, warm
// with one file changed, and warm with nothing changed; the speed-up and the cache's own overhead.
// Usage: node dist/bench/build.js [--quick] [--json FILE]
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cProject, parseMakeOutput, unitName } from './c-project.js';
import { benchDir, benchMain, CLI, median, run, type Result } from './common.js';

interface Timed {
  seconds: number;
  cacheSeconds: number;
  compiled: number;
}

async function build(work: string, files: Record<string, string>, cached: boolean): Promise<Timed> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
    await utimes(join(root, path), 1, 1);
  }
  const env = { ...process.env, NIX_BUILD_TOP: top, NBC_STORE: join(work, 'store') };
  const args = ['--cache-name', 'bench', '--cache-dir', 'obj', '--quiet'];
  const clock = () => Number(process.hrtime.bigint()) / 1e9;
  const started = clock();
  if (cached) await run(process.execPath, [CLI, 'restore', ...args], { cwd: root, env });
  const afterRestore = clock();
  const make = await run('make', ['-j2'], { cwd: root, env, maxBuffer: 1 << 26 });
  const afterMake = clock();
  if (cached) await run(process.execPath, [CLI, 'save', ...args], { cwd: root, env });
  const ended = clock();
  return { seconds: ended - started, cacheSeconds: (afterRestore - started) + (ended - afterMake), compiled: parseMakeOutput(make.stdout).compiled.length };
}

export async function buildBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-build-'));
  // The store of Nix builds exists beforehand (restore and save do not create one there).
  await mkdir(join(work, 'store'));
  try {
    // The targets are about this project: quick mode only runs each build once.
    const units = 400;
    // Weight gives each unit a compile time like a real C file's (tens of milliseconds).
    const files = cProject({ units, weight: 100 });
    const runs = quick ? 1 : 3;
    const plain = await median(runs, async () => (await build(work, files, false)).seconds);
    const cold = await build(work, files, true);
    let warm: Timed | undefined;
    let same: Timed | undefined;
    // Each warm run edits one more file than the cache the previous run saved: one compile each.
    let current = files;
    let edits = 0;
    const warmSeconds = await median(runs, async () => {
      const edited = `${unitName(7 + edits++)}.c`;
      current = { ...current, [edited]: `${current[edited]}/* edited */\n` };
      return (warm = await build(work, current, true)).seconds;
    });
    const sameSeconds = await median(runs, async () => (same = await build(work, current, true)).seconds);
    // Figures of a cache that did not hit would measure nothing: the overhead one would even pass.
    if (warm!.compiled !== 1 || same!.compiled !== 0) {
      throw new Error(`the cached builds compiled ${warm!.compiled} and ${same!.compiled} files, not 1 and 0: the cache did not hit`);
    }
    const label = `${units + 1}-file C project, make -j2`;
    return [
      { bench: 'build', figure: `${label}: cold, cached (compiled ${cold.compiled})`, value: cold.seconds, unit: 's', baseline: 'no cache', baselineValue: plain, ratio: plain / cold.seconds },
      { bench: 'build', figure: `${label}: one file changed (compiled ${warm!.compiled})`, value: warmSeconds, unit: 's', baseline: 'cold build', baselineValue: plain, ratio: plain / warmSeconds, threshold: 10 },
      { bench: 'build', figure: `${label}: nothing changed (compiled ${same!.compiled})`, value: sameSeconds, unit: 's' },
      // Overhead as a share of the cold build: the threshold asks for at most 10%, i.e. ratio ≥ 10.
      { bench: 'build', figure: `${label}: cache overhead, nothing changed`, value: same!.cacheSeconds, unit: 's', baseline: 'cold build', baselineValue: plain, ratio: plain / same!.cacheSeconds, threshold: 10 },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(buildBench);
