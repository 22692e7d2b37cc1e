/** The typed results of each command; `--json FILE` writes them as they are. */

import type { NameStats } from './core/stats.js';
import { megabytes } from './core/units.js';
import type { StoreTotals } from './manage.js';
import type { HasherName } from '../workers/types.js';

export interface Attempt {
  name: string;
  key: string;
  /** unrelocatable: saved under another build root and not exactly movable here (a miss, not a problem). */
  result: 'hit' | 'missing' | 'unusable' | 'unrelocatable';
  reason?: string;
}

export type ExplainStatus = 'unchanged' | 'changed' | 'new' | 'removed' | 'restored' | 'skipped' | 'rewritten';

export interface ExplainLine {
  status: ExplainStatus;
  path: string;
  reason?: string;
}

export interface SourceCounts {
  files: number;
  /** Bytes hashed. */
  bytes: number;
  unchanged: number;
  changed: number;
  added: number;
  removed: number;
}

export interface RestoreReport {
  command: 'restore';
  /** "error" only when something failed that was not the cache's fault to report as a miss. */
  outcome: 'hit' | 'miss' | 'error';
  /** As CI caches say it: hit (this cache name), fallback (a fallback name's cache), or miss. */
  result: 'hit' | 'fallback' | 'miss';
  /** The key of the archive restored (or, with lookupOnly, found); null on a miss. */
  matchedKey: string | null;
  /** Only looked the keys up (lookupOnly): downloaded nothing, changed nothing. */
  lookupOnly?: boolean;
  cacheName: string;
  root: string;
  /** The cache restored, and whether it was a fallback. */
  hit?: { name: string; key: string; fallback: boolean };
  attempts: Attempt[];
  sources: SourceCounts;
  artifacts: { restored: number; skipped: number; bytes: number };
  warnings: string[];
  seconds: number;
  /** With `explain`: how the plan classified every path. */
  explain?: ExplainLine[];
}

export interface SaveReport {
  command: 'save';
  outcome: 'saved' | 'skipped' | 'error';
  cacheName: string;
  key: string;
  /** Saved from a failed build (save-on-failure). */
  buildFailed: boolean;
  reason?: string;
  files: number;
  dirs: number;
  /** Bytes of file content archived. */
  bytes: number;
  /** Bytes written to the store. */
  archiveBytes: number;
  /** The blob layout: blobs the store did not have (written), files found as restore left them (not read). */
  blobs?: { new: number; unread: number };
  warnings: string[];
  seconds: number;
}

export interface SettleReport {
  command: 'settle';
  outcome: 'settled' | 'skipped' | 'error';
  reason?: string;
  /** Files restore put in place (below the cache dirs given). */
  restored: number;
  /** Of those, files whose time changed since restore (rewritten by configure, say). */
  rewritten: number;
  /** Of those, files with the saved content that got their restored time back. */
  settled: number;
  warnings: string[];
  seconds: number;
}

export interface HashReport {
  command: 'hash';
  root: string;
  /** simd: the native multi-buffer MD5; crypto: node:crypto (no AVX2, not built, or NBC_HASHER=crypto). */
  hasher: HasherName;
  files: number;
  unhashable: number;
  bytes: number;
  warnings: string[];
  seconds: number;
}

export interface ListedCache {
  name: string;
  key: string;
  layout: 'archive' | 'blobs';
  /** Bytes in the store: an archive's; a manifest's plus its blobs' (shared blobs count in each cache). */
  size: number;
  /** Blob layout: bytes of the files it holds. */
  logical?: number;
  /** ISO 8601. */
  modified: string;
  /** ISO 8601: the last restore of it (absent: never restored since the marker was kept). */
  lastRestored?: string;
}

export interface ListReport {
  command: 'ls';
  store: string;
  caches: ListedCache[];
  totals: StoreTotals;
  seconds: number;
}

export interface PruneReport {
  command: 'prune';
  store: string;
  dryRun: boolean;
  deleted: ListedCache[];
  /** The blob layout's garbage collection (what it would do, with dryRun). */
  gc: {
    deletedPacks: { key: string; size: number }[];
    /** Marks made: gc (no cache names the pack) or repack (mostly garbage). */
    marked: { key: string; kind: 'gc' | 'repack' }[];
    deletedMarks: string[];
    /** Bytes of packs no cache names, deleted now or by a later prune. */
    garbage: number;
  };
  seconds: number;
}

export interface StatsReport {
  command: 'stats';
  /** The events file read. */
  events: string;
  /** ISO 8601 start of the period counted; null: every event. */
  since: string | null;
  /** Per cache name, sorted. */
  names: NameStats[];
  total: NameStats;
  /** Lines that were not events (cut short, or from another version). */
  badLines: number;
  seconds: number;
}

export type Report = RestoreReport | SaveReport | SettleReport | HashReport | ListReport | PruneReport | StatsReport;

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Why an attempt ended as it did, for --explain. */
export function whyAttempt(attempt: Attempt): string {
  if (attempt.reason) return attempt.reason;
  return attempt.result === 'hit' ? 'found' : 'no archive under this key (never saved with these settings, or pruned)';
}

/** The one line each command ends with. */
export function summaryLine(report: Report): string {
  const time = `${report.seconds.toFixed(2)} s`;
  switch (report.command) {
    case 'restore': {
      const { sources: s, artifacts: a } = report;
      const head = report.matchedKey !== null
        ? `hit ${report.attempts.at(-1)?.name}${report.result === 'fallback' ? ' (fallback)' : ''}, key ${report.matchedKey}`
        : `${report.outcome} (tried ${report.attempts.map((t) => `${t.name}: ${t.result}${t.result !== 'unusable' && t.reason ? `, ${t.reason}` : ''}`).join('; ') || 'nothing'})`;
      if (report.lookupOnly) return `restore: ${head} (lookup only: nothing downloaded or changed); ${time}`;
      return `restore: ${head}; ${count(s.files, 'file')} hashed, ${s.changed} changed, ${s.added} new, ${s.removed} removed; `
        + `${count(a.restored, 'artifact')} restored (${megabytes(a.bytes)}), ${a.skipped} skipped; ${time}`;
    }
    case 'save':
      return report.outcome === 'saved'
        ? `save: saved ${report.cacheName}${report.buildFailed ? ' (from a failed build)' : ''}, key ${report.key}; ${count(report.files, 'file')}, ${megabytes(report.bytes)} `
          + `-> ${megabytes(report.archiveBytes)}; ${time}`
        : `save: ${report.outcome} ${report.cacheName} (${report.reason}); ${time}`;
    case 'settle':
      return report.outcome === 'settled'
        ? `settle: ${report.settled} of ${count(report.rewritten, 'rewritten file')} had the saved content and got the restored time back; `
          + `${count(report.restored, 'file')} restored; ${time}`
        : `settle: ${report.outcome} (${report.reason}); ${time}`;
    case 'ls':
      return `ls: ${count(report.caches.length, 'archive')}, ${megabytes(report.totals.stored)} in ${report.store}; ${time}`;
    case 'prune': {
      const { gc } = report;
      const packs = gc.deletedPacks.length + gc.marked.length + gc.deletedMarks.length === 0 ? ''
        : `; packs: ${count(gc.deletedPacks.length, 'pack')} ${megabytes(gc.deletedPacks.reduce((sum, p) => sum + p.size, 0))}, `
          + `${gc.marked.length} marked, ${count(gc.deletedMarks.length, 'mark')} cleared`;
      return `prune: ${report.dryRun ? 'would delete' : 'deleted'} ${count(report.deleted.length, 'archive')}, `
        + `${megabytes(report.deleted.reduce((sum, c) => sum + c.size, 0))}${packs}; ${time}`;
    }
    case 'stats':
      return `stats: ${count(report.total.restores, 'restore')}, hit rate ${report.total.hitRate === null ? '-' : `${Math.round(report.total.hitRate * 100)}%`}, `
        + `${report.total.reused} files reused, ${report.total.changed} recompiled, ${count(report.total.saves, 'save')} `
        + `${report.since ? `since ${report.since}` : 'in all'} from ${report.events}${report.badLines ? ` (${count(report.badLines, 'unreadable line')})` : ''}; ${time}`;
    case 'hash':
      return `hash: ${count(report.files, 'file')}, ${megabytes(report.bytes)}, ${report.unhashable} unreadable; ${report.hasher} MD5, ${time}`;
  }
}
