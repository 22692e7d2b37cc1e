// What a blob-layout restore left in place, for the save of the same build: each restored file's
// inode, size, mtime and ctime, its blob, MD5 and whether it mentions the root. A file found with
// all four the same is unchanged, so save names its blob without reading it (as git's index lets
// `git status` skip unchanged files). ctime cannot be set by a program: any write or chmod since
// restore changes it, however the build sets mtimes afterwards.
import type { Stats } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BytePath } from '../core/paths.js';

const UNCHANGED_FILE = 'unchanged.json';

/** A restored file as restore left it: what lstat said, and what it was. */
export type UnchangedFile = [ino: number, size: number, mtimeMs: number, ctimeMs: number, blob: string, md5: string, rooted: boolean];

/** Whether `stat` finds the file as `was` records it, with one link (a hard link is packed as a link). */
export function isUnchanged(was: UnchangedFile | undefined, stat: Stats | undefined): was is UnchangedFile {
  if (!was || !stat?.isFile() || stat.nlink !== 1) return false;
  const [ino, size, mtimeMs, ctimeMs] = was;
  return stat.ino === ino && stat.size === size && stat.mtimeMs === mtimeMs && stat.ctimeMs === ctimeMs;
}/** How many times to touch the probe for the clock to pass the newest ctime (a few ms of a coarse clock). */
const TICK_TRIES = 100_000;

export interface RestoredBlob {
  path: BytePath;
  blob: string;
  md5: string;
  rooted: boolean;
}

/**
 * Records the restored files as `stats` found them after restore. A change within the same tick of the file system's
 * clock would keep ctime as recorded, so the record is written only once the clock has moved past
 * the newest ctime in it (a probe file in the state dir shows it); a clock that does not move
 * leaves no record, and save reads every file.
 */
export async function recordUnchanged(stateDir: string, stats: ReadonlyMap<BytePath, Stats>, files: readonly RestoredBlob[]): Promise<void> {
  const rows: [BytePath, UnchangedFile][] = [];
  let newest = 0;
  for (const { path, blob, md5, rooted } of files) {
    const info = stats.get(path);
    if (!info?.isFile()) continue;
    rows.push([path, [info.ino, info.size, info.mtimeMs, info.ctimeMs, blob, md5, rooted]]);
    newest = Math.max(newest, info.ctimeMs);
  }
  const probe = join(stateDir, 'clock-probe');
  for (let tries = 0; ; tries++) {
    if (tries === TICK_TRIES) return;
    await writeFile(probe, '');
    if ((await stat(probe)).ctimeMs > newest) break;
  }
  await rm(probe, { force: true });
  await writeFile(join(stateDir, UNCHANGED_FILE), JSON.stringify(rows), { mode: 0o600 });
}

/** The record of the restore that ran with this state dir; empty when there is none or it is unreadable. */
export async function readUnchanged(stateDir: string): Promise<Map<BytePath, UnchangedFile>> {
  try {
    return new Map(JSON.parse(await readFile(join(stateDir, UNCHANGED_FILE), 'utf8')) as [BytePath, UnchangedFile][]);
  } catch {
    return new Map();
  }
}

/** Forgets the record: a restore starting over in this state dir must not leave an older one. */
export function forgetUnchanged(stateDir: string): Promise<void> {
  return rm(join(stateDir, UNCHANGED_FILE), { force: true });
}
