// Question: what does the blob layout (#17) cost the store?
//   Space: a second cache name whose tree differs from the first's in 1% of its artifacts (a branch
//     built after restoring master's cache as its fallback) vs the store holding the first alone
//     (target: ≤ 1.05× the space of one).
//   Requests: S3 requests (s3rver on loopback, counted by a proxy in front of it) of a save, a
//     restore on a machine with an empty local blob cache, and a warm save after a one-file edit,
//     on a tree of many small files (target: a few dozen, 36, whatever the number of files).
// Usage: node dist/bench/store-cost.js [--quick] [--json FILE]
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { restore, save } from '../src/index.js';
import type { RestoreOptions } from '../src/options.js';
import { startProxy } from '../test/proxy.js';
import { ACCESS_KEY_ID, startS3 } from '../test/s3-server.js';
import { benchDir, benchMain, type Result } from './common.js';
import { ARTIFACTS, generateTree, SOURCES } from './workload.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** "A few dozen". */
const FEW_DOZEN = 36;
const SPACE_TARGET = 1.05;

async function storeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir, { recursive: true })) {
    const info = await stat(join(dir, name));
    if (info.isFile()) total += info.size;
  }
  return total;
}

/** Builds in fresh roots below `work`, each with its own state dir and local blob cache. */
function machines(work: string, store: string, extra: Partial<RestoreOptions> = {}) {
  let builds = 0;
  return async (cacheName: string, fallbacks: string[] = []): Promise<RestoreOptions & { root: string }> => {
    const top = join(work, `build-${++builds}`);
    const root = join(top, 'source');
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'main.c'), 'int main;\n');
    return {
      store, cacheName, fallbacks, cacheDirs: ['obj'], layout: 'blobs', root, stateDir: join(top, 'state'), blobCache: join(top, 'blobs'), ...extra,
    };
  };
}

async function expect(outcome: Promise<{ outcome: string; reason?: string }>, wanted: string): Promise<void> {
  const report = await outcome;
  if (report.outcome !== wanted) throw new Error(`expected ${wanted}, got ${report.outcome}: ${report.reason ?? JSON.stringify(report)}`);
}

async function space(work: string, quick: boolean): Promise<Result[]> {
  const store = join(work, 'space-store');
  await mkdir(store);
  const machine = machines(join(work, 'space'), store);
  const spec = { ...ARTIFACTS, files: quick ? 300 : 1_500, maxBytes: 1 << 20 };
  const master = await machine('master');
  await restore(master);
  generateTree(join(master.root, 'obj'), spec);
  await expect(save(master), 'saved');
  const one = await storeBytes(store);
  // The branch restores master's cache, and its build changes 1% of the artifacts.
  const branch = await machine('branch', ['master']);
  await expect(restore(branch), 'hit');
  const files = (await readdir(join(branch.root, 'obj'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  for (const entry of files.slice(0, Math.ceil(files.length / 100))) {
    const path = join(entry.parentPath, entry.name);
    await writeFile(path, randomBytes((await stat(path)).size));
  }
  await expect(save(branch), 'saved');
  const two = await storeBytes(store);
  return [{
    bench: 'store-cost', figure: `two caches 1% apart (${spec.files} files, ${(one / 1e6).toFixed(0)} MB): store space`, value: two / one, unit: '× one',
    baseline: `target ${SPACE_TARGET}× of one cache`, baselineValue: SPACE_TARGET, ratio: SPACE_TARGET / (two / one), threshold: 1,
  }];
}

async function requests(work: string, quick: boolean): Promise<Result[]> {
  const s3 = await startS3('bench', benchDir());
  let count = 0;
  const proxy = await startProxy(Number(new URL(s3.endpoint).port), (_req, _res, forward) => {
    count++;
    forward();
  });
  try {
    const machine = machines(join(work, 'requests'), `s3://${s3.bucket}/cost`, {
      s3: { endpoint: proxy.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'bench-secret' } },
    });
    const spec = { ...SOURCES, files: quick ? 10_000 : 50_000 };
    const counted = async (what: () => Promise<void>) => {
      const before = count;
      await what();
      return count - before;
    };
    const first = await machine('main');
    await restore(first);
    const bytes = generateTree(join(first.root, 'obj'), spec);
    const cold = await counted(() => expect(save(first), 'saved'));
    const next = await machine('main');
    const fetched = await counted(() => expect(restore(next), 'hit'));
    await writeFile(join(next.root, 'obj', 'edited.o'), randomBytes(4096));
    const warm = await counted(() => expect(save(next), 'saved'));
    const label = `${spec.files} small files, ${(bytes / 1e6).toFixed(0)} MB, S3`;
    const figure = (what: string, value: number): Result => ({
      bench: 'store-cost', figure: `${label}: requests of ${what}`, value, unit: 'requests',
      baseline: `a few dozen (${FEW_DOZEN})`, baselineValue: FEW_DOZEN, ratio: FEW_DOZEN / value, threshold: 1,
    });
    return [figure('a save', cold), figure('a restore, empty local cache', fetched), figure('a warm save', warm)];
  } finally {
    await proxy.close();
    await s3.close();
  }
}

export async function storeCostBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-store-cost-'));
  try {
    return [...await space(work, quick), ...await requests(work, quick)];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(storeCostBench);
