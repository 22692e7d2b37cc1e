import { open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseEvents, summarize, type CacheEvent } from './core/stats.js';
import { megabytes } from './core/units.js';
import type { RestoreReport, SaveReport, StatsReport } from './report.js';

/**
 * Past this, one write(2) to a file opened O_APPEND may not land whole beside concurrent appends
 * on every file system (PIPE_BUF is the bound POSIX gives for pipes; Linux local files do better).
 */
const MAX_LINE = 4096;

/** The event a restore or save report makes; lookup-only restores make none (they restore nothing). */
export function eventOf(report: RestoreReport | SaveReport, now = new Date()): CacheEvent | undefined {
  const common = { v: 1, time: now.toISOString(), cacheName: report.cacheName, seconds: report.seconds } as const;
  if (report.command === 'save') {
    return { ...common, command: 'save', result: report.outcome, key: report.key, files: report.files, bytes: report.archiveBytes };
  }
  if (report.lookupOnly) return undefined;
  return {
    ...common, command: 'restore', result: report.outcome === 'error' ? 'error' : report.result, key: report.matchedKey,
    files: report.sources.files, changed: report.sources.changed + report.sources.added, reused: report.artifacts.restored, bytes: report.artifacts.bytes,
  };
}

/**
 * Appends the event as one line in one write, so that builds appending at once never interleave.
 * In a group-writable directory (a store shared by build users) the file is made group-writable.
 * Throws on failure: the caller decides whether that is worth a warning.
 */
export async function appendEvent(file: string, event: CacheEvent): Promise<void> {
  const line = Buffer.from(`${JSON.stringify(event)}\n`);
  if (line.length > MAX_LINE) throw new Error(`event of ${line.length} bytes is too long to append atomically`);
  const handle = await open(file, 'a', 0o664);
  try {
    await handle.write(line);
    const [own, parent] = await Promise.all([handle.stat(), stat(dirname(file))]);
    if ((parent.mode & 0o020) !== 0 && (own.mode & 0o020) === 0 && own.uid === process.getuid?.()) await handle.chmod(0o664);
  } finally {
    await handle.close();
  }
}

export interface StatsOptions {
  /** The events file; a missing file has no events. */
  events: string;
  /** Count only the events of this many milliseconds before `now`. Default: all. */
  sinceMs?: number;
  /** Count only this cache name. Default: every name. */
  cacheName?: string;
  /** Milliseconds since the epoch. Default: now. */
  now?: number;
}

/** Hit rate, files reused and recompiled, bytes and time per cache name, from an events file. */
export async function readStats(options: StatsOptions): Promise<StatsReport> {
  const now = options.now ?? Date.now();
  let text = '';
  try {
    text = await readFile(options.events, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const { events, bad } = parseEvents(text);
  const from = options.sinceMs === undefined ? 0 : now - options.sinceMs;
  return {
    command: 'stats', events: options.events, since: options.sinceMs === undefined ? null : new Date(from).toISOString(), badLines: bad,
    ...summarize(events, from, options.cacheName), seconds: (Date.now() - now) / 1000,
  };
}

/** The table stats prints: one row per name, and the total when there are several. */
export function statsTable(report: StatsReport): string {
  if (report.names.length === 0) return '';
  const header = ['NAME', 'RESTORES', 'HIT', 'FALLBACK', 'MISS', 'HIT RATE', 'REUSED', 'RECOMPILED', 'RESTORED', 'SAVED', 'TIME'];
  const rows = [...report.names, ...(report.names.length > 1 ? [report.total] : [])].map((s) => [
    s.cacheName, `${s.restores}`, `${s.hits}`, `${s.fallbacks}`, `${s.misses}`, s.hitRate === null ? '-' : `${Math.round(s.hitRate * 100)}%`,
    `${s.reused}`, `${s.changed}`, megabytes(s.restoredBytes), megabytes(s.savedBytes), `${s.seconds.toFixed(1)} s`,
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => `${row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()}\n`).join('');
}
