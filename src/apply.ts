import { copyFile, lstat, lutimes, mkdir, readlink, rename, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import type { RestorePlan, TimeAssignment } from './core/plan.js';
import { ancestorsOf, isWithin, textFromBytePath, type BytePath } from './core/paths.js';
import { NbcError } from './core/errors.js';
import type { WorkerPool } from './pool.js';
import { absolutePath } from './core/list-directory.js';

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

/** The name a file copied across file systems has until its time is set. */
export const PARTIAL_SUFFIX = '.nbc-partial';

async function moveFile(from: Buffer, to: Buffer, mtime: number | undefined): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    // The state dir is on another file system than the tree: copy, and give the copy its time
    // before it takes its name, so the tree never holds an artifact newer than a changed source.
    const partial = Buffer.concat([to, Buffer.from(PARTIAL_SUFFIX)]);
    const stat = await lstat(from);
    if (stat.isSymbolicLink()) await symlink(await readlink(from, { encoding: 'buffer' }), partial);
    else await copyFile(from, partial, 1 /* COPYFILE_EXCL */);
    if (mtime !== undefined) await lutimes(partial, mtime, mtime);
    await rename(partial, to);
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

/** The paths a plan creates in the tree, parents before children: what a crashed restore may have left. */
export function createdPaths(plan: RestorePlan, sourceDirs: ReadonlySet<BytePath>): BytePath[] {
  return plan.restore.filter((entry) => !sourceDirs.has(entry.path)).map((entry) => entry.path);
}

async function failIfAny(failed: Promise<string[]>, what: string): Promise<void> {
  const reasons = await failed;
  if (reasons.length > 0) throw new NbcError('NBC_TIMES', `cannot set the times of ${what} (${reasons.length} files), e.g. ${reasons[0]}`);
}

/**
 * Moves the planned artifacts from staging into the tree and applies the plan's times, in an order
 * that keeps every instant safe to build from (a restore killed anywhere never leaves an artifact
 * newer than a source it was not built from): artifacts get their times in staging, changed
 * sources theirs, then the artifacts move in (renames keep times), then unchanged sources get the
 * store time (which only makes them older). `beforeMove` runs before anything enters the tree.
 * Nothing that exists is replaced (the plan left out every source path). A directory the tree
 * lacks, with nothing left out below it, moves in one rename (creating thousands of directories
 * twice is what a restore of a deep tree would otherwise spend its time on). On a failure
 * everything moved in so far is removed again, so the tree is left with its sources only.
 */
export async function applyPlan(plan: RestorePlan, staging: Buffer, root: Buffer, sourceDirs: ReadonlySet<BytePath>,
  pool: WorkerPool, signal?: AbortSignal, beforeMove?: () => Promise<void>): Promise<{ restored: number; bytes: number; warnings: string[] }> {
  await failIfAny(applyTimes(pool, staging, plan.artifactTimes, signal), 'restored artifacts');
  await failIfAny(applyTimes(pool, root, plan.changedTimes, signal), 'changed sources');
  await beforeMove?.();
  const times = new Map(plan.artifactTimes.map((t) => [t.path, t.mtime]));
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
        await moveFile(staged, target, times.get(entry.path));
        created.push({ path: target, kind: 'file' });
      } else if (!dirs.has(entry.path) && !skipped.some((path) => isWithin(path, entry.path)) && await moveDir(staged, target)) {
        created.push({ path: target, kind: 'tree' });
        dirs.add(entry.path);
        moved = entry.path;
      } else await makeDir(entry.path);
    }
    // Unchanged sources that keep a newer time only cost a needless rebuild: warn, do not undo.
    const warnings = (await applyTimes(pool, root, plan.unchangedTimes, signal)).map((f) => `cannot set the time of ${f}`);
    return { restored, bytes, warnings };
  } catch (error) {
    for (const { path, kind } of created.reverse()) {
      await (kind === 'tree' ? rm(path, { recursive: true, force: true }) : kind === 'dir' ? rmdir(path) : unlink(path)).catch(() => {});
    }
    throw error;
  }
}
