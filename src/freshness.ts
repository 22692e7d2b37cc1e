// State belongs to one build. The state in the temp dir (one per source root) outlives the build
// that made it: a save in a tree where restore did not run this time would record the sources as
// they were then, with artifacts built from the sources as they are now. Save records only what is
// proven for this tree: the same root directory, and no source changed since restore hashed it.
import { lstatSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { formatManifest } from './core/manifest.js';
import { artifactFingerprint } from './core/plan.js';
import { bytePathFromText, type BytePath } from './core/paths.js';
import type { WorkerPool } from './pool.js';
import { treeIdentity, type LoadedState } from './state.js';
import { absolutePath } from './core/list-directory.js';

/**
 * The artifacts as they are now: each one's lstat (none when gone or unreadable) and the
 * fingerprint of those that are not directories (core/plan.ts). Synchronous: a promise per lstat
 * costs ten times the lstat, and nothing else runs meanwhile.
 */
export function currentArtifacts(root: string, entries: readonly { path: BytePath; kind: string }[]): { stats: Map<BytePath, Stats>; fingerprint: string } {
  const rootBytes = Buffer.from(root);
  const stats = new Map<BytePath, Stats>();
  for (const { path } of entries) {
    try {
      stats.set(path, lstatSync(absolutePath(rootBytes, path)));
    } catch { /* gone or unreadable: a changed artifact */ }
  }
  const fingerprint = artifactFingerprint(entries.filter((e) => e.kind !== 'dir').map(({ path }) => {
    const stat = stats.get(path);
    return { path, size: stat?.size ?? -1, mtimeMs: stat?.mtimeMs ?? 0, ctimeMs: stat?.ctimeMs ?? 0, ino: stat?.ino ?? 0, mode: stat?.mode ?? 0 };
  }));
  return { stats, fingerprint };
}

/** Why the recorded state belongs to another tree than the one at its root now; undefined when it is this one. */
export async function otherTree(loaded: LoadedState): Promise<string | undefined> {
  const recorded = loaded.state.tree;
  if (recorded === undefined) return undefined;
  const now = await treeIdentity(loaded.state.root);
  return now === recorded ? undefined
    : `the state in ${loaded.dir} was recorded for another directory at ${loaded.state.root} (restore did not run in this one)`;
}

export interface Proven {
  manifestText: Buffer;
  /** Sources that changed (or went) since restore: left out of the manifest, so a later restore counts them as new. */
  changed: BytePath[];
}

const BATCH = 256;

/**
 * The restore-time manifest without the sources that changed since: each source whose ctime is not
 * older than the state's is hashed again and kept only when its digest is the recorded one. The
 * ctime is compared in whole seconds, as coarse file systems store it.
 */
export async function provenManifest(loaded: LoadedState, pool: WorkerPool, signal?: AbortSignal): Promise<Proven> {
  const root = Buffer.from(loaded.state.root);
  const since = loaded.writtenNs - (loaded.writtenNs % 1_000_000_000n);
  const paths = [...loaded.manifest.keys()];
  const changed: BytePath[] = [];
  const recheck: [path: BytePath, link: boolean][] = [];
  for (let i = 0; i < paths.length; i += BATCH) {
    signal?.throwIfAborted();
    await Promise.all(paths.slice(i, i + BATCH).map(async (path) => {
      const stat = await lstat(absolutePath(root, path), { bigint: true }).catch(() => undefined);
      if (!stat || !(stat.isFile() || stat.isSymbolicLink())) changed.push(path);
      else if (stat.ctimeNs >= since) recheck.push([path, stat.isSymbolicLink()]);
    }));
  }
  for (let i = 0; i < recheck.length; i += BATCH) {
    const batch = recheck.slice(i, i + BATCH);
    const files = batch.filter(([, link]) => !link).map(([path]) => path);
    const symlinks = batch.filter(([, link]) => link).map(([path]) => path);
    // Digests come files first, then symlinks; null for what could not be read.
    const { digests } = await pool.hash({ root: bytePathFromText(loaded.state.root), files, symlinks }, signal);
    [...files, ...symlinks].forEach((path, index) => {
      if (digests[index] !== loaded.manifest.get(path)) changed.push(path);
    });
  }
  if (changed.length === 0) return { manifestText: loaded.manifestText, changed };
  const proven = new Map(loaded.manifest);
  for (const path of changed) proven.delete(path);
  return { manifestText: formatManifest(proven), changed: changed.sort() };
}
