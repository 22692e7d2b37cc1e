// Question: what does a sandboxed build pay for reaching S3 through `nix-build-cache serve` instead
// of directly, and does the daemon's memory stay flat as archives grow? A cache round trip (save,
// restore elsewhere) straight to s3rver, through the daemon, and through the daemon with its disk
// cache (the restore then reads local disk); the daemon's peak RSS (VmHWM) after each size.
// Usage: node dist/bench/daemon.js [--quick] [--json FILE]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon } from '../test/daemon-process.js';
import { ACCESS_KEY_ID, startS3 } from '../test/s3-server.js';
import { benchDir, benchMain, medians, type Result } from './common.js';
import { ours } from './roundtrip.js';
import { ARTIFACTS, generateTree } from './workload.js';

const SECRET = 'bench-secret';

/** Peak resident memory of a live process, in MB. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) / 1e3;
}

export async function daemonBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-daemon-'));
  const s3 = await startS3('bench', benchDir());
  const env = { ...process.env, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, NBC_S3_ENDPOINT: s3.endpoint };
  const plain = await startDaemon(join(work, 'plain'), s3, SECRET);
  const cached = await startDaemon(join(work, 'cached'), s3, SECRET, ['--disk-cache', join(work, 'cached', 'disk')]);
  // The build side of a daemon store has no credentials and no endpoint.
  const buildEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  try {
    const results: Result[] = [];
    const runs = quick ? 1 : 3;
    for (const files of quick ? [100, 400] : [500, 2000]) {
      const cacheDir = join(work, `tree-${files}`, 'obj');
      const mb = generateTree(cacheDir, { ...ARTIFACTS, files }) / 1e6;
      const label = `artifacts (${files} files, ${mb.toFixed(0)} MB)`;
      const times = await medians(runs, {
        direct: () => ours(work, cacheDir, `s3://${s3.bucket}/direct`, env),
        daemon: () => ours(work, cacheDir, `unix://${plain.socket}`, buildEnv),
        diskCache: () => ours(work, cacheDir, `unix://${cached.socket}`, buildEnv),
      });
      results.push(
        { bench: 'daemon', figure: `${label}: through the daemon`, value: times.daemon, unit: 's',
          baseline: 'straight to S3', baselineValue: times.direct, ratio: times.direct / times.daemon },
        { bench: 'daemon', figure: `${label}: through the daemon, disk cache`, value: times.diskCache, unit: 's',
          baseline: 'straight to S3', baselineValue: times.direct, ratio: times.direct / times.diskCache },
        { bench: 'daemon', figure: `${label}: daemon peak RSS`, value: await peakRss(plain.process.pid!), unit: 'MB' },
        { bench: 'daemon', figure: `${label}: daemon with disk cache, peak RSS`, value: await peakRss(cached.process.pid!), unit: 'MB' },
      );
      await rm(join(cacheDir, '..'), { recursive: true, force: true });
    }
    return results;
  } finally {
    await plain.stop();
    await cached.stop();
    await s3.close();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(daemonBench);
