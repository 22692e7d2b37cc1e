// Shared by the benchmarks: timing of commands (median of runs), result records, the CLI's path.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
export const run = promisify(execFile);

/**
 * Where benchmarks make their trees: NBC_BENCH_DIR, else /dev/shm (memory) where it exists, so that
 * a disk's write-back and discards do not decide the figures; both sides of a ratio use it.
 */
export function benchDir(): string {
  if (process.env.NBC_BENCH_DIR) return process.env.NBC_BENCH_DIR;
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/** One measured figure with the baseline it is judged against, measured in the same run. */
export interface Result {
  bench: string;
  figure: string;
  value: number;
  unit: string;
  baseline?: string;
  baselineValue?: number;
  /** baselineValue / value for times (higher is better), value / baselineValue for rates. */
  ratio?: number;
  /** The ratio must be at least this; absent for figures that are only reported. */
  threshold?: number;
}

/** The median of some measurements. */
export function middle(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function median(runs: number, measure: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await measure());
  return middle(values);
}

/**
 * The median of each measurement, taken in turns: every run measures each one once, starting one
 * further along each time. This VM gives memory back to its host, so writing fresh pages costs more
 * at some moments than at others; in turns, such a spell falls on all sides of a ratio alike.
 */
export async function medians<K extends string>(runs: number, measures: Record<K, () => Promise<number>>): Promise<Record<K, number>> {
  const keys = Object.keys(measures) as K[];
  const values = new Map<K, number[]>(keys.map((key) => [key, []]));
  for (let run = 0; run < runs; run++) {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[(run + i) % keys.length]!;
      values.get(key)!.push(await measures[key]());
    }
  }
  return Object.fromEntries(keys.map((key) => [key, middle(values.get(key)!)])) as Record<K, number>;
}

/** Wall-clock seconds of a shell command (output discarded, as a benchmark must consume it). */
export async function timeShell(command: string, cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = process.hrtime.bigint();
  await run('bash', ['-c', command], { cwd, maxBuffer: 1 << 30, env: { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export function printTable(results: readonly Result[]): void {
  for (const r of results) {
    const base = r.baseline ? `  vs ${r.baseline} ${r.baselineValue!.toFixed(3)} ${r.unit}: ${r.ratio!.toFixed(2)}×` : '';
    const gate = r.threshold === undefined ? '' : `  (needs ≥ ${r.threshold}×: ${r.ratio! >= r.threshold ? 'ok' : 'BELOW'})`;
    console.log(`${r.bench.padEnd(10)} ${r.figure.padEnd(44)} ${r.value.toFixed(3).padStart(9)} ${r.unit}${base}${gate}`);
  }
}

/** A benchmark script's entry: `--quick` for the small workload, `--json FILE` for the results. */
export async function benchMain(bench: (quick: boolean) => Promise<Result[]>): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, json: { type: 'string' } } });
  const results = await bench(values.quick === true);
  printTable(results);
  if (values.json) await writeFile(values.json, `${JSON.stringify(results, null, 2)}\n`);
}
