import { createHash } from 'node:crypto';
import { diffManifests, type Manifest, type ManifestDiff } from './manifest.js';
import { ancestorsOf, type BytePath } from './paths.js';

/** The mtime of every file in the Nix store, in seconds: 1970-01-01T00:00:01Z. */
export const STORE_MTIME = 1;

/** The source tree as restore found it. */
export interface SourceTree {
  /** Digest of every hashed file (symlinks: digest of the target string). */
  digests: Manifest;
  /** Files that could not be hashed (unreadable, vanished, fifos…): always treated as changed. */
  unhashable: readonly BytePath[];
  /** Every directory of the tree, "." excluded. */
  dirs: ReadonlySet<BytePath>;
}

export type ArtifactKind = 'file' | 'dir' | 'symlink';

/** One entry of the cache archive (below a cache dir), as checked by extraction. */
export interface ArtifactEntry {
  path: BytePath;
  kind: ArtifactKind;
  /** Modification time recorded in the archive, in seconds. */
  mtime: number;
  /** Bytes of content (0 for directories and links). */
  size: number;
}

export interface SkippedArtifact {
  path: BytePath;
  reason: string;
}

export interface TimeAssignment {
  path: BytePath;
  /** Seconds since the epoch. */
  mtime: number;
}

/**
 * Where restored artifacts go in time: archived second `seconds[i]` (ascending, distinct) becomes
 * `lastMs - (seconds.length - 1 - i)` milliseconds. The artifacts keep their archived order in a
 * window just before the new and changed sources' times, so they are newer than anything outside
 * the tree (system headers, toolchains) and older than every new or changed source.
 */
export interface ArtifactClock {
  seconds: readonly number[];
  /** Milliseconds since the epoch given to the newest archived second. */
  lastMs: number;
}

/**
 * The restored time, in milliseconds, of a time a tool recorded (ninja's logs), given in seconds:
 * that of the newest archived second not after it, so recorded and restored times keep their order.
 * Before the first archived second: a step before the window.
 */
export function restoredMs(clock: ArtifactClock, recordedSeconds: number): number {
  const { seconds } = clock;
  let low = 0;
  let high = seconds.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (seconds[middle]! <= recordedSeconds) low = middle + 1;
    else high = middle;
  }
  return clock.lastMs - (seconds.length - low);
}

export interface RestorePlan {
  diff: ManifestDiff;
  /** Entries to move into the tree, parents before children. */
  restore: ArtifactEntry[];
  skipped: SkippedArtifact[];
  clock: ArtifactClock;
  /** Every restored non-directory artifact, with its time (seconds). Applied before the move. */
  artifactTimes: TimeAssignment[];
  /** Changed, unhashable and (a second older) new sources: newer than every artifact. Applied before the move. */
  changedTimes: TimeAssignment[];
  /** Unchanged sources: STORE_MTIME, older than everything. Applied last: it only makes files older. */
  unchangedTimes: TimeAssignment[];
}

/**
 * Decides what a restore does so that the build tool redoes exactly what changed:
 * - sources whose digest equals the cached manifest get STORE_MTIME, whatever patchPhase did;
 * - restored artifacts get times in a window of milliseconds ending two seconds before
 *   `changedTime`, in the order of their archived times (see ArtifactClock);
 * - new files get a second before `changedTime`: newer than every artifact, and older than every
 *   changed source, since a new file may be an output of an earlier build in the same tree;
 * - changed and unhashable sources get `changedTime`.
 * Removed sources need no time: their users changed too. A stale copy of one in the archive is
 * never restored (nor is anything at a current source path), so a removed source stays removed.
 */
export function planRestore(tree: SourceTree, cached: Manifest, entries: readonly ArtifactEntry[],
  changedTime: number): RestorePlan {
  const diff = diffManifests(tree.digests, cached);
  // No spreads into push: a tree of millions of entries would overflow the arguments.
  for (const path of tree.unhashable) diff.changed.push(path);
  diff.changed.sort();
  const { restore, skipped } = selectArtifacts(tree, cached, entries);
  const unchangedTimes = diff.unchanged.map((path) => ({ path, mtime: STORE_MTIME }));
  const changedTimes = [
    ...diff.changed.map((path) => ({ path, mtime: changedTime })), ...diff.added.map((path) => ({ path, mtime: changedTime - 1 })),
  ];
  const artifacts = restore.filter((entry) => entry.kind !== 'dir');
  const seconds = [...new Set(artifacts.map((entry) => entry.mtime))].sort((a, b) => a - b);
  const clock: ArtifactClock = { seconds, lastMs: (changedTime - 2) * 1000 };
  const artifactTimes = artifacts.map((entry) => ({ path: entry.path, mtime: restoredMs(clock, entry.mtime) / 1000 }));
  return { diff, restore, skipped, clock, artifactTimes, changedTimes, unchangedTimes };
}

function selectArtifacts(tree: SourceTree, cached: Manifest, entries: readonly ArtifactEntry[]) {
  const sourceFiles = new Set<BytePath>([...tree.digests.keys(), ...tree.unhashable]);
  const restore: ArtifactEntry[] = [];
  const skipped: SkippedArtifact[] = [];
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const entry of sorted) {
    const blocker = ancestorsOf(entry.path).find((dir) => sourceFiles.has(dir));
    const reason = blocker !== undefined ? `inside ${blocker}, which is a source file`
      : sourceFiles.has(entry.path) ? 'is a source file now'
      : tree.dirs.has(entry.path) ? (entry.kind === 'dir' ? undefined : 'is a source directory now')
      : cached.has(entry.path) ? 'was a source when the cache was made (removed since)'
      : null;
    if (reason === null) restore.push(entry);
    else if (reason !== undefined) skipped.push({ path: entry.path, reason });
  }
  return { restore, skipped };
}

/** The time given to changed sources: a second before `nowMs`, in whole seconds, so that files the
 * build writes later are newer even where the file system's clock is coarse. */
export function changedSourceTime(nowMs: number): number {
  return Math.floor(nowMs / 1000) - 1;
}

export interface ArtifactState {
  path: BytePath;
  /** Bytes for files, 0 for symlinks. */
  size: number;
  /** Milliseconds since the epoch. */
  mtimeMs: number;
  /** What no program sets: any write, chmod or rename since changes ctime or the inode. */
  ctimeMs: number;
  ino: number;
  mode: number;
}

/**
 * A digest of the artifacts in the tree (files and symlinks as lstat sees them), taken after
 * restore and again at save: equal digests mean the build changed nothing worth uploading.
 */
export function artifactFingerprint(artifacts: Iterable<ArtifactState>): string {
  const lines = [...artifacts].map((a) => `${a.path}\0${a.size}\0${a.mtimeMs}\0${a.ctimeMs}\0${a.ino}\0${a.mode}\n`).sort();
  return createHash('sha256').update(lines.join(''), 'latin1').digest('hex');
}
