// Question: does a big cache round-trip through the S3 store byte for byte, and does the peak RSS
// of save and of restore stay within the part buffers' bound, flat as the archive grows?
// Usage: node dist/bench/memory.js [--quick] [--json FILE]   (full: 1 GiB and 4 GiB; quick: 64 and 256 MiB)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { formatManifest } from '../src/core/manifest.js';
import { hashTree } from '../src/hash.js';
import { S3_DEFAULTS } from '../src/stores/s3.js';
import { startS3 } from '../test/s3-server.js';
import { benchMain, type Result } from './common.js';

const run = promisify(execFile);
const MEASURED = fileURLToPath(new URL('./measured.js', import.meta.url));
const MiB = 1 << 20;

/** Semi-compressible content, like object files: random runs between repeated runs. */
function artifact(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let at = 0; at < size; at += 8192) randomBytes(Math.min(4096, size - at)).copy(data, at);
  return data;
}

async function measured(command: 'restore' | 'save', options: object): Promise<{ report: { outcome: string; seconds: number }; maxRssBytes: number }> {
  const { stdout } = await run(process.execPath, [MEASURED, command, JSON.stringify(options)], { maxBuffer: 1 << 26 });
  return JSON.parse(stdout) as never;
}

/** Save then restore a cache of `mib` MiB in fresh directories; checks the restored bytes. */
async function roundTrip(work: string, endpoint: string, bucket: string, mib: number) {
  const common = {
    store: `s3://${bucket}/mem-${mib}`, cacheName: 'big', cacheDirs: ['obj'],
    s3: { endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
  };
  const source = join(work, `build-${mib}-1`, 'source');
  await mkdir(join(source, 'obj'), { recursive: true });
  await writeFile(join(source, 'main.c'), 'int main(void) { return 0; }\n');
  await measured('restore', { ...common, root: source, stateDir: join(work, `state-${mib}-1`) });
  // The "build": artifacts appear after restore, as they would.
  for (let i = 0; i * 4 < mib; i++) await writeFile(join(source, 'obj', `part${i}.o`), artifact(Math.min(4, mib - i * 4) * MiB));
  const saved = await measured('save', { ...common, stateDir: join(work, `state-${mib}-1`) });
  const target = join(work, `build-${mib}-2`, 'source');
  await mkdir(target, { recursive: true });
  await writeFile(join(target, 'main.c'), 'int main(void) { return 0; }\n');
  const restored = await measured('restore', { ...common, root: target, stateDir: join(work, `state-${mib}-2`) });
  const identical = formatManifest((await hashTree(join(source, 'obj'))).digests).equals(formatManifest((await hashTree(join(target, 'obj'))).digests));
  await rm(join(work, `build-${mib}-1`), { recursive: true, force: true });
  await rm(join(work, `build-${mib}-2`), { recursive: true, force: true });
  return { saved, restored, identical };
}

export async function memoryBench(quick: boolean): Promise<Result[]> {
  const sizes = quick ? [64, 256] : [1024, 4096];
  const bound = (4 * S3_DEFAULTS.queueSize * S3_DEFAULTS.partSize + 100e6) / 1e6;
  const s3 = await startS3('bench');
  const work = await mkdtemp(join(tmpdir(), 'nbc-bench-memory-'));
  try {
    const results: Result[] = [];
    const peaks: Record<string, number[]> = { save: [], restore: [] };
    for (const mib of sizes) {
      const { saved, restored, identical } = await roundTrip(work, s3.endpoint, s3.bucket, mib);
      if (!identical || restored.report.outcome !== 'hit') {
        const outcomes = JSON.stringify({ saved: saved.report, restored: restored.report });
        throw new Error(`the ${mib} MiB cache did not round-trip byte for byte: ${outcomes}`);
      }
      for (const [direction, m] of [['save', saved], ['restore', restored]] as const) {
        const rss = m.maxRssBytes / 1e6;
        peaks[direction]!.push(rss);
        results.push({ bench: 'memory', figure: `${direction} ${mib} MiB: peak RSS (${m.report.seconds.toFixed(1)} s)`, value: rss, unit: 'MB',
          baseline: '4 × queueSize × partSize + 100 MB', baselineValue: bound, ratio: bound / rss, threshold: 1.0 });
      }
    }
    for (const [direction, [small, large]] of Object.entries(peaks)) {
      results.push({ bench: 'memory', figure: `${direction}: peak RSS at ${sizes[1]} vs ${sizes[0]} MiB`, value: large!, unit: 'MB',
        baseline: `at ${sizes[0]} MiB`, baselineValue: small!, ratio: small! / large! });
    }
    return results;
  } finally {
    await s3.close();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(memoryBench);
