import { copyFile, lstat, mkdir, readlink, rename, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { STORE_MTIME, type RestorePlan, type TimeAssignment } from './core/plan.js';
import { ancestorsOf, isWithin, textFromBytePath, type BytePath } from './core/paths.js';
import { NbcError } from './errors.js';
import type { WorkerPool } from './pool.js';
import { absolutePath } from './walk.js';

const TIMES_BATCH = 1024;

/** Applies times on the pool; returns "path: reason" for each that failed. */
export async function applyTimes(pool: WorkerPool, root: Buffer, times: readonly TimeAssignment[],
  signal?: AbortSignal): Promise<string[]> {
  const rootPath = root.toString('latin1');
  const batches: Promise<string[]>[] = [];
  for (let i = 0; i < times.length; i += TIMES_BATCH) {
    const slice = times.slice(i, i + TIMES_BATCH);
    const task = { root: rootPath, paths: slice.map((t) => t.path), mtimes: slice.map((t) => t.mtime) };
    batches.push(pool.setTimes(task, signal).then((result) =>
      result.errors.map(([index, reason]) => `${textFromBytePath(slice[index]!.path)}: ${reason}`)));
  }
  return (await Promise.all(batches)).flat();
}

async function moveFile(from: Buffer, to: Buffer): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    // The state dir is on another file system than the tree: copy instead.
    const stat = await lstat(from);
    if (stat.isSymbolicLink()) await symlink(await readlink(from, { encoding: 'buffer' }), to);
    else await copyFile(from, to, 1 /* COPYFILE_EXCL */);
  }
}

/** Renames a whole staged directory into the tree; false when the file systems differ. */
async function moveDir(from: Buffer, to: Buffer): Promise<boolean> {
  try {
    await rename(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EXDEV') return false;
    throw error;
  }
}

/**
 * Moves the planned artifacts from staging into the tree and applies the plan's times. Nothing
 * that exists is replaced (the plan left out every source path). A directory the tree lacks, with
 * nothing left out below it, moves in one rename (creating thousands of directories twice is
 * what a restore of a deep tree would otherwise spend its time on). On any failure everything
 * moved in so far is removed again, so the tree is left with its sources only.
 */
export async function applyPlan(plan: RestorePlan, staging: Buffer, root: Buffer, sourceDirs: ReadonlySet<BytePath>,
  pool: WorkerPool, signal?: AbortSignal): Promise<{ restored: number; bytes: number; warnings: string[] }> {
  const created: { path: Buffer; kind: 'file' | 'dir' | 'tree' }[] = [];
  const dirs = new Set(sourceDirs);
  const makeDir = async (path: BytePath) => {
    if (dirs.has(path)) return;
    const target = absolutePath(root, path);
    const staged = await lstat(absolutePath(staging, path)).catch(() => undefined);
    await mkdir(target, { mode: staged?.isDirectory() ? staged.mode & 0o777 : 0o755 });
    created.push({ path: target, kind: 'dir' });
    dirs.add(path);
  };
  const skipped = plan.skipped.map((entry) => entry.path);
  let moved: BytePath | undefined;
  let restored = 0;
  let bytes = 0;
  try {
    for (const entry of plan.restore) {
      signal?.throwIfAborted();
      if (entry.kind !== 'dir') {
        bytes += entry.size;
        restored++;
      }
      // Already in place: it came with a directory moved whole.
      if (moved !== undefined && isWithin(entry.path, moved)) continue;
      moved = undefined;
      for (const dir of ancestorsOf(entry.path)) await makeDir(dir);
      const target = absolutePath(root, entry.path);
      const staged = absolutePath(staging, entry.path);
      if (entry.kind !== 'dir') {
        await moveFile(staged, target);
        created.push({ path: target, kind: 'file' });
      } else if (!dirs.has(entry.path) && !skipped.some((path) => isWithin(path, entry.path)) && await moveDir(staged, target)) {
        created.push({ path: target, kind: 'tree' });
        dirs.add(entry.path);
        moved = entry.path;
      } else await makeDir(entry.path);
    }
    const critical = plan.times.filter((t) => t.mtime !== STORE_MTIME);
    const failed = await applyTimes(pool, root, critical, signal);
    if (failed.length > 0) throw new NbcError('NBC_TIMES', `cannot set times (${failed.length} files), e.g. ${failed[0]}`);
    // Unchanged sources that keep a newer time only cost a needless rebuild: warn, do not undo.
    const unchanged = plan.times.filter((t) => t.mtime === STORE_MTIME);
    const warnings = (await applyTimes(pool, root, unchanged, signal)).map((f) => `cannot set the time of ${f}`);
    return { restored, bytes, warnings };
  } catch (error) {
    for (const { path, kind } of created.reverse()) {
      await (kind === 'tree' ? rm(path, { recursive: true, force: true }) : kind === 'dir' ? rmdir(path) : unlink(path)).catch(() => {});
    }
    throw error;
  }
}
