// The data the benchmarks measure, seeded and deterministic: a "monorepo" source tree of many small
// files (sizes log-uniform, nested about four deep) and an "artifacts" tree of fewer big,
// semi-compressible files. Usage: node dist/bench/workload.js sources|artifacts DIR [--files N] [--seed S]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** mulberry32: a small, fast, seeded PRNG, so every run writes the same bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A pool of bytes to cut files from: random runs alternating with text runs (compresses ~2-3×). */
function bytePool(random: () => number, size: number): Buffer {
  const pool = Buffer.alloc(size);
  const words = 'static int return const struct void unsigned char include define module import export '.split(' ');
  for (let at = 0; at < size;) {
    const run = 64 + Math.floor(random() * 4096);
    if (random() < 0.3) for (let i = 0; i < run && at < size; i++) pool[at++] = Math.floor(random() * 256);
    else {
      const text = Buffer.from(Array.from({ length: run / 6 }, () => words[Math.floor(random() * words.length)]).join(' '));
      at += text.copy(pool, at, 0, Math.min(text.length, size - at));
    }
  }
  return pool;
}

export interface TreeSpec {
  files: number;
  minBytes: number;
  maxBytes: number;
  seed: number;
}

export const SOURCES: TreeSpec = { files: 50_000, minBytes: 200, maxBytes: 64 << 10, seed: 1 };
export const ARTIFACTS: TreeSpec = { files: 2_000, minBytes: 64 << 10, maxBytes: 4 << 20, seed: 2 };

/** Writes the tree below `dir`; returns the bytes written. Sizes are log-uniform in [min, max]. */
export function generateTree(dir: string, spec: TreeSpec): number {
  const random = prng(spec.seed);
  const pool = bytePool(random, 8 << 20);
  let total = 0;
  for (let i = 0; i < spec.files; i++) {
    const size = Math.round(spec.minBytes * (spec.maxBytes / spec.minBytes) ** random());
    const path = join(dir, `d${i % 10}`, `e${Math.floor(i / 10) % 20}`, `f${Math.floor(i / 200) % 25}`, `file${i}.dat`);
    mkdirSync(join(path, '..'), { recursive: true });
    const start = Math.floor(random() * (pool.length - size));
    // A distinct first line, so no two files share a digest.
    const data = Buffer.concat([Buffer.from(`${i}\n`), pool.subarray(start, start + size)]);
    writeFileSync(path, data);
    total += data.length;
  }
  return total;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { files: { type: 'string' }, seed: { type: 'string' } } });
  const [kind, dir] = positionals;
  const base = kind === 'artifacts' ? ARTIFACTS : kind === 'sources' ? SOURCES : undefined;
  if (!base || !dir) {
    console.error('usage: workload.js sources|artifacts DIR [--files N] [--seed S]');
    process.exitCode = 2;
  } else {
    const spec = { ...base, ...(values.files ? { files: Number(values.files) } : {}), ...(values.seed ? { seed: Number(values.seed) } : {}) };
    console.log(`${spec.files} files, ${(generateTree(dir, spec) / 1e6).toFixed(1)} MB in ${dir}`);
  }
}
