// Question: how fast does nix-build-cache hash a source tree, next to the seed's
// `find | xargs md5sum`, the best shell can do (`xargs -P2 -n 500 md5sum`), our own single-thread
// path, and the machine's MD5 ceiling? Usage: node dist/bench/hash.js [--quick] [--json FILE]
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { hashTreeWithPool } from '../src/hash.js';
import { WorkerPool } from '../src/pool.js';
import { benchDir, benchMain, CLI, median, medians, timeShell, type Result } from './common.js';
import { ARTIFACTS, generateTree, SOURCES } from './workload.js';

/** MB/s of MD5 on one core, in this process, on data already in memory. */
function md5CeilingPerCore(): number {
  const data = Buffer.alloc(64 << 20, 7);
  const started = process.hrtime.bigint();
  for (let i = 0; i < 4; i++) createHash('md5').update(data).digest();
  return (4 * data.length / 1e6) / (Number(process.hrtime.bigint() - started) / 1e9);
}

export async function hashBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-hash-'));
  try {
    const trees = {
      small: { spec: SOURCES, dir: join(work, 'small') },
      // Quick mode still needs a few hundred MB: on 90 MB the pool's fixed cost swung the ratio by ±10 %.
      big: { spec: { ...ARTIFACTS, files: quick ? 400 : ARTIFACTS.files / 4 }, dir: join(work, 'big') },
    };
    const results: Result[] = [];
    const runs = 7;
    for (const [name, { spec, dir }] of Object.entries(trees)) {
      const bytes = generateTree(dir, spec);
      const mb = bytes / 1e6;
      const md5sum = (parallel: string) => `find . -type f -print0 | xargs -0 ${parallel} md5sum > /dev/null`;
      const timed = (command: string) => () => timeShell(command, dir);
      await timeShell(md5sum('-P2 -n 500'), dir); // warm the page cache
      const { seed, bar, ours, single } = await medians(runs, {
        seed: timed(md5sum('')), bar: timed(md5sum('-P2 -n 500')),
        ours: timed(`node ${CLI} hash . --quiet > /dev/null`), single: timed(`node ${CLI} hash . --quiet --threads 1 > /dev/null`),
      });
      const label = `${name} tree (${spec.files} files, ${mb.toFixed(0)} MB)`;
      results.push(
        { bench: 'hash', figure: `${label}: ours`, value: ours, unit: 's', baseline: 'xargs -P2 md5sum', baselineValue: bar, ratio: bar / ours,
          ...(name === 'small' ? { threshold: 1.0 } : {}) },
        { bench: 'hash', figure: `${label}: ours`, value: ours, unit: 's', baseline: 'seed xargs md5sum', baselineValue: seed, ratio: seed / ours },
        { bench: 'hash', figure: `${label}: ours, one thread`, value: single, unit: 's', baseline: 'seed xargs md5sum', baselineValue: seed, ratio: seed / single },
        { bench: 'hash', figure: `${label}: ours, files/s`, value: spec.files / ours, unit: 'files/s' },
      );
      if (name === 'big') {
        // Throughput against the ceiling is the library's, with its pool started: process start-up
        // is in the CLI figures above.
        const pool = new WorkerPool();
        const library = await median(runs, async () => {
          const started = process.hrtime.bigint();
          await hashTreeWithPool(Buffer.from(dir), { pool });
          return Number(process.hrtime.bigint() - started) / 1e9;
        });
        await pool.close();
        const ceiling = 2 * md5CeilingPerCore();
        results.push({ bench: 'hash', figure: `${label}: library, MB/s`, value: mb / library, unit: 'MB/s', baseline: 'two cores\' MD5 ceiling',
          baselineValue: ceiling, ratio: mb / library / ceiling, threshold: 0.9 });
      }
    }
    return results;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(hashBench);
