import { open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CacheEvent } from './core/stats.js';
import type { RestoreReport, SaveReport } from './report.js';

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
