// What the CLI prints besides the summary: progress, --explain, listings, GitHub step outputs.
import { appendFile } from 'node:fs/promises';
import type { CacheObject } from '../core/prune.js';
import { megabytes } from '../core/units.js';
import { describeError } from '../core/errors.js';
import { phaseLine, progressLine, type ProgressListener } from '../progress.js';
import type { StoreTotals } from '../manage.js';
import { whyAttempt, type ListedCache, type PruneReport, type RestoreReport } from '../report.js';
import type { Command } from './spec.js';

/**
 * Progress on stderr: on a terminal one line rewritten at most ten times a second; elsewhere (Nix
 * logs, CI) one plain line as each phase of restore or save ends.
 */
export function progress(quiet: boolean, command: Command): { update: ProgressListener | undefined; clear: () => void } {
  const stream = process.stderr;
  if (quiet) return { update: undefined, clear: () => {} };
  if (!stream.isTTY) {
    if (command !== 'restore' && command !== 'save') return { update: undefined, clear: () => {} };
    return { update: (p) => { if (p.done) stream.write(`nix-build-cache ${command}: ${phaseLine(p)}\n`); }, clear: () => {} };
  }
  let last = 0;
  let shown = false;
  return {
    update: (p) => {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      // Never wider than the terminal: a wrapped line cannot be rewritten.
      stream.write(`\r\x1b[K${`nix-build-cache ${command}: ${progressLine(p)}`.slice(0, Math.max(20, (stream.columns || 80) - 1))}`);
    },
    clear: () => {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}

export function printExplain(report: RestoreReport, out: NodeJS.WritableStream): void {
  for (const attempt of report.attempts) out.write(`# tried ${attempt.name}, key ${attempt.key}: ${attempt.result}, ${whyAttempt(attempt)}\n`);
  if (report.attempts.length === 0) out.write('# tried nothing: restore failed before the store was read (see the warning)\n');
  for (const line of report.explain ?? []) {
    out.write(`${line.status.padEnd(9)}  ${line.path}${line.reason ? `  (${line.reason})` : ''}\n`);
  }
}

export function listed(caches: readonly CacheObject[]): ListedCache[] {
  return caches.map(({ name, key, layout, size, logical, modified, lastRestored }) => ({
    name, key, layout, size, ...(logical === undefined ? {} : { logical }), modified: modified.toISOString(),
    ...(lastRestored ? { lastRestored: lastRestored.toISOString() } : {}),
  }));
}

function age(iso: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return seconds < 3600 ? `${Math.round(seconds / 60)}m` : seconds < 172800 ? `${Math.round(seconds / 3600)}h` : `${Math.round(seconds / 86400)}d`;
}

/**
 * The table of caches; with blob-layout caches a LOGICAL column (the bytes of their files; SIZE is
 * then their manifest plus their blobs, shared ones counted in each) and, given `totals`, a total line.
 */
export function printCaches(caches: readonly ListedCache[], out: NodeJS.WritableStream, verb = '', totals?: StoreTotals): void {
  const blobs = caches.some((c) => c.layout === 'blobs') || (totals?.packs ?? 0) > 0;
  const rows = caches.map((c) => [c.name, megabytes(c.size), ...(blobs ? [c.logical === undefined ? '-' : megabytes(c.logical)] : []), age(c.modified), c.key]);
  const heads = ['NAME', 'SIZE', ...(blobs ? ['LOGICAL'] : []), 'AGE', 'KEY'];
  const widths = heads.slice(0, -1).map((head, i) => Math.max(...rows.map((row) => row[i]!.length), head.length));
  const line = (cells: string[]) => `${verb}${cells.map((cell, i) => (i < cells.length - 1 ? cell.padEnd(widths[i]!) : cell)).join('  ')}\n`;
  if (rows.length > 0 && verb === '') out.write(line(heads));
  for (const row of rows) out.write(line(row));
  if (totals && blobs) {
    out.write(`total: ${megabytes(totals.logical)} logical in ${caches.length} ${caches.length === 1 ? 'cache' : 'caches'}; the store holds ${megabytes(totals.stored)}: `
      + `${megabytes(totals.archives)} archives, ${megabytes(totals.manifests)} manifests, ${megabytes(totals.packs)} packs `
      + `(${megabytes(totals.garbage)} of them named by no cache)\n`);
  }
}

/** Prune's packs and marks, one line each, as the caches: `deleted  pack  SIZE  KEY`, `marked  gc  KEY`. */
export function printCollected(gc: PruneReport['gc'], out: NodeJS.WritableStream, dryRun: boolean): void {
  const [deleted, marked] = dryRun ? ['would delete', 'would mark'] : ['deleted', 'marked'];
  for (const pack of gc.deletedPacks) out.write(`${deleted}  pack  ${megabytes(pack.size)}  ${pack.key}\n`);
  for (const mark of gc.marked) out.write(`${marked}  ${mark.kind}  ${mark.key}\n`);
  for (const key of gc.deletedMarks) out.write(`${deleted}  mark  ${key}\n`);
}

/** The step outputs of actions/cache (cache-hit: an exact hit only) plus the result and key. */
export async function writeGithubOutput(file: string, report: RestoreReport, onWarning: (message: string) => void): Promise<void> {
  const lines = [`cache-hit=${report.result === 'hit'}`, `cache-result=${report.result}`, `cache-matched-key=${report.matchedKey ?? ''}`];
  await appendFile(file, `${lines.join('\n')}\n`).catch((error: unknown) => onWarning(`cannot write the GitHub step outputs to ${file}: ${describeError(error)}`));
}
