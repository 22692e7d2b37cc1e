// Question: does the blob layout (#17) make a save cost what changed? On a directory store, in one
// process: a warm save after a one-file edit vs a full save of the same tree (time: target ≥ 10×;
// bytes written: ≤ 2 × the edited file + 64 KB). The restore side: bench/blobs-restore.ts.
// The tree is the (1,500 artifacts) in quick mode too: on a smaller one a warm save's fixed
// costs (a thread, a listing) weigh more than on any tree worth caching.
// Usage: node dist/bench/blobs.js [--quick] [--json FILE]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { restore, save } from '../src/index.js';
import type { RestoreOptions } from '../src/options.js';
import { benchDir, benchMain, medians, type Result } from './common.js';
import { generateTree, type TreeSpec } from './workload.js';

const FULL: TreeSpec = { files: 1_500, minBytes: 16 << 10, maxBytes: 1 << 20, seed: 3 };

const seconds = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e9;

export async function blobsBench(_quick: boolean): Promise<Result[]> {
  const spec = FULL;
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-blobs-'));
  let builds = 0;
  try {
    const store = join(work, 'store');
    await mkdir(store);
    const options = (blobCache: string): RestoreOptions & { root: string } => {
      const top = join(work, `build-${++builds}`);
      return { store, cacheName: 'main', cacheDirs: ['obj'], layout: 'blobs', blobCache, root: join(top, 'source'), stateDir: join(top, 'state') };
    };
    const sources = async (root: string, text: string) => {
      await mkdir(root, { recursive: true });
      await writeFile(join(root, 'main.c'), text);
    };
    const hit = async (o: RestoreOptions) => {
      const report = await restore(o);
      if (report.outcome !== 'hit') throw new Error(`restore missed: ${JSON.stringify(report.attempts)}`);
    };
    let edits = 0;
    const cache = join(work, 'blobs');
    // The first build: a miss, the tree, a full save (as every save of the archive layout is).
    const timeFull = async () => {
      await rm(store, { recursive: true, force: true });
      await rm(cache, { recursive: true, force: true });
      await mkdir(store);
      const first = options(cache);
      await sources(first.root, 'int main;\n');
      await restore(first);
      const bytes = generateTree(join(first.root, 'obj'), spec);
      const started = process.hrtime.bigint();
      const saved = await save(first);
      fullBytes = saved.archiveBytes;
      treeBytes = bytes;
      return seconds(started);
    };
    // The next build: a hit, one source and one artifact changed, a save.
    const timeWarm = async () => {
      const next = options(cache);
      await sources(next.root, 'int main;\n');
      await hit(next);
      await writeFile(join(next.root, 'main.c'), `int main = ${++edits};\n`);
      const edited = Buffer.alloc(256 << 10, edits);
      await writeFile(join(next.root, 'obj', 'edited.o'), edited);
      const started = process.hrtime.bigint();
      const saved = await save(next);
      warmBytes = saved.archiveBytes;
      editBytes = edited.length;
      return seconds(started);
    };
    let fullBytes = 0;
    let warmBytes = 0;
    let treeBytes = 0;
    let editBytes = 0;
    const saves = await medians(3, { full: timeFull, warm: timeWarm });
    const mb = (treeBytes / 1e6).toFixed(0);
    return [
      { bench: 'blobs', figure: `warm save, one-file edit (${spec.files} files, ${mb} MB)`, value: saves.warm, unit: 's',
        baseline: 'full save', baselineValue: saves.full, ratio: saves.full / saves.warm, threshold: 10 },
      { bench: 'blobs', figure: 'warm save: MB written', value: warmBytes / 1e6, unit: 'MB',
        baseline: 'full save', baselineValue: fullBytes / 1e6, ratio: fullBytes / warmBytes },
      { bench: 'blobs', figure: 'warm save: MB written', value: warmBytes / 1e6, unit: 'MB',
        baseline: '2 × the edited file + 64 KB', baselineValue: (2 * editBytes + (64 << 10)) / 1e6, ratio: (2 * editBytes + (64 << 10)) / warmBytes, threshold: 1 },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(blobsBench);
