// Question: how long does a cache round trip (save, then restore into a fresh tree) take on the
// local store, next to the shell pipelines on the same data: `tar | gzip -1` and `tar | zstd -1 -T2`
// to a file and back, and the seed's way (md5sum manifest, `tar | xz`)?
// Usage: node dist/bench/roundtrip.js [--quick] [--json FILE]
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchMain, CLI, median, run, timeShell, type Result } from './common.js';
import { ARTIFACTS, generateTree, SOURCES } from './workload.js';

let fresh = 0;

/** Our save then restore, each in its own build dir, on the local store; seconds for both. */
async function ours(work: string, artifacts: string, compression: string): Promise<number> {
  const top = join(work, `ours-${++fresh}`);
  const root = join(top, 'source');
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'main.c'), 'int main(void) { return 0; }\n');
  const args = ['--cache-name', `rt-${fresh}`, '--cache-dir', 'obj', '--store', join(work, 'store'), '--compression', compression, '--quiet'];
  await run(process.execPath, [CLI, 'restore', ...args, '--state-dir', join(top, 'state-1')], { cwd: root });
  await cp(artifacts, join(root, 'obj'), { recursive: true });
  const started = process.hrtime.bigint();
  await run(process.execPath, [CLI, 'save', ...args, '--state-dir', join(top, 'state-1')], { cwd: root });
  const again = join(top, 'again');
  await mkdir(again);
  await writeFile(join(again, 'main.c'), 'int main(void) { return 0; }\n');
  await run(process.execPath, [CLI, 'restore', ...args, '--state-dir', join(top, 'state-2')], { cwd: again });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await rm(top, { recursive: true, force: true });
  return seconds;
}

/** A shell pipeline's pack to a file and unpack into a fresh dir; seconds for both. */
async function shell(work: string, artifacts: string, pack: string, unpack: string): Promise<number> {
  const dir = join(work, `shell-${++fresh}`);
  await mkdir(join(dir, 'out'), { recursive: true });
  const seconds = await timeShell(`cd ${artifacts}/.. && ${pack} > ${dir}/archive && cd ${dir}/out && < ${dir}/archive ${unpack}`, work);
  await rm(dir, { recursive: true, force: true });
  return seconds;
}

export async function roundTripBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(tmpdir(), 'nbc-bench-roundtrip-'));
  try {
    const results: Result[] = [];
    const trees = {
      artifacts: { ...ARTIFACTS, files: quick ? 60 : 1000 },
      'small files': { ...SOURCES, files: quick ? 3000 : 50_000 },
    };
    for (const [name, spec] of Object.entries(trees)) {
      const artifacts = join(work, name.replace(' ', '-'), 'obj');
      const mb = generateTree(artifacts, spec) / 1e6;
      const runs = quick ? 1 : 3;
      const label = `${name} (${spec.files} files, ${mb.toFixed(0)} MB), local store`;
      const gzip = await median(runs, () => shell(work, artifacts, 'tar -cf - obj | gzip -1', 'gzip -dc | tar -xf -'));
      const zstd = await median(runs, () => shell(work, artifacts, 'tar -cf - obj | zstd -1 -T2 -q', 'zstd -dc -q | tar -xf -'));
      const seed = await median(quick ? 1 : 2, () => shell(work, artifacts, 'find obj -type f -print0 | xargs -0 md5sum > /dev/null; tar -cf - obj | xz -T1', 'xz -dc | tar -xf -'));
      const oursGzip = await median(runs, () => ours(work, artifacts, 'gzip'));
      const oursZstd = await median(runs, () => ours(work, artifacts, 'zstd'));
      results.push(
        { bench: 'roundtrip', figure: `${label}: ours, gzip`, value: oursGzip, unit: 's', baseline: 'tar | gzip -1', baselineValue: gzip, ratio: gzip / oursGzip },
        { bench: 'roundtrip', figure: `${label}: ours, zstd`, value: oursZstd, unit: 's', baseline: 'tar | zstd -1 -T2', baselineValue: zstd, ratio: zstd / oursZstd },
        { bench: 'roundtrip', figure: `${label}: ours, zstd`, value: oursZstd, unit: 's', baseline: "the seed's md5sum + tar | xz", baselineValue: seed, ratio: seed / oursZstd },
      );
    }
    return results;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(roundTripBench);
