// What the CLI prints besides the summary: progress, --explain, listings, GitHub step outputs.
import { appendFile } from 'node:fs/promises';
import type { CacheObject } from '../core/prune.js';
import { megabytes } from '../core/units.js';
import { describeError } from '../errors.js';
import { phaseLine, progressLine, type ProgressListener } from '../progress.js';
import { whyAttempt, type ListedCache, type RestoreReport } from '../report.js';
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
  return caches.map(({ name, key, size, modified, lastRestored }) =>
    ({ name, key, size, modified: modified.toISOString(), ...(lastRestored ? { lastRestored: lastRestored.toISOString() } : {}) }));
}

function age(iso: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return seconds < 3600 ? `${Math.round(seconds / 60)}m` : seconds < 172800 ? `${Math.round(seconds / 3600)}h` : `${Math.round(seconds / 86400)}d`;
}

export function printCaches(caches: readonly ListedCache[], out: NodeJS.WritableStream, verb = ''): void {
  const rows = caches.map((c) => [c.name, megabytes(c.size), age(c.modified), c.key]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length), ['NAME', 'SIZE', 'AGE'][i]!.length));
  const line = (cells: string[]) => `${verb}${cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ')}\n`;
  if (rows.length > 0 && verb === '') out.write(line(['NAME', 'SIZE', 'AGE', 'KEY']));
  for (const row of rows) out.write(line(row));
}

/** The step outputs of actions/cache (cache-hit: an exact hit only) plus the result and key. */
export async function writeGithubOutput(file: string, report: RestoreReport, onWarning: (message: string) => void): Promise<void> {
  const lines = [`cache-hit=${report.result === 'hit'}`, `cache-result=${report.result}`, `cache-matched-key=${report.matchedKey ?? ''}`];
  await appendFile(file, `${lines.join('\n')}\n`).catch((error: unknown) => onWarning(`cannot write the GitHub step outputs to ${file}: ${describeError(error)}`));
}
