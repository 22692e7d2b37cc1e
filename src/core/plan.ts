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

export interface RestorePlan {
  diff: ManifestDiff;
  /** Entries to move into the tree, parents before children. */
  restore: ArtifactEntry[];
  skipped: SkippedArtifact[];
  /** Times for every source file and every restored non-directory artifact. */
  times: TimeAssignment[];
}

/**
 * Decides what a restore does so that the build tool redoes exactly what changed:
 * - sources whose digest equals the cached manifest get STORE_MTIME, whatever patchPhase did;
 * - restored artifacts get STORE_MTIME + 1 + rank of their archived mtime, so they are newer than
 *   every unchanged source, older than every changed one, and keep their order among themselves;
 * - changed, new and unhashable sources get `changedTime` (newer than any artifact).
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
  const times: TimeAssignment[] = [];
  for (const path of diff.unchanged) times.push({ path, mtime: STORE_MTIME });
  for (const path of [...diff.changed, ...diff.added]) times.push({ path, mtime: changedTime });
  for (const time of rankArtifactTimes(restore.filter((entry) => entry.kind !== 'dir'))) times.push(time);
  return { diff, restore, skipped, times };
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

function rankArtifactTimes(artifacts: readonly ArtifactEntry[]): TimeAssignment[] {
  const byAge = [...artifacts].sort((a, b) => a.mtime - b.mtime || (a.path < b.path ? -1 : 1));
  let rank = 0;
  return byAge.map((entry, index) => {
    if (index > 0 && entry.mtime !== byAge[index - 1]!.mtime) rank++;
    return { path: entry.path, mtime: STORE_MTIME + 1 + rank };
  });
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
}

/**
 * A digest of the artifacts in the tree (files and symlinks with size and mtime), taken after
 * restore and again at save: equal digests mean the build changed nothing worth uploading.
 */
export function artifactFingerprint(artifacts: Iterable<ArtifactState>): string {
  const lines = [...artifacts].map((a) => `${a.path}\0${a.size}\0${a.mtimeMs}\n`).sort();
  return createHash('sha256').update(lines.join(''), 'latin1').digest('hex');
}
