import { sortManifest } from './core/manifest.js';
import type { BytePath } from './core/paths.js';
import { resolve } from 'node:path';
import { checkPositiveInteger } from './core/config.js';
import { ConfigError } from './core/errors.js';
import { withPool, type WorkerPool } from './pool.js';
import type { HasherName, HashResult, HashTask, WalkHashResult } from '../workers/types.js';

/** Bytes a task hashes before it hands the rest of its files back: about 10 ms of hashing. */
const TASK_BYTES = 16 << 20;

/**
 * Files per hashing task, for the files a walking task handed back. The SIMD hasher hashes eight
 * files side by side, so a task needs many files to keep its lanes full; big files need tasks
 * small enough that no worker is left with most of the bytes at the end. Sizes are unknown until
 * hashed, so the batch follows the average file size so far.
 */
function batchSize(filesHashed: number, bytesHashed: number): number {
  if (filesHashed === 0) return 16;
  return Math.min(256, Math.max(16, Math.round(TASK_BYTES / Math.max(1, bytesHashed / filesHashed))));
}

export interface TreeHash {
  /** Digest of every file and symlink, sorted by path. */
  digests: Map<BytePath, string>;
  /** Files that could not be hashed, sorted: unreadable, vanished, fifos, sockets, devices. */
  unhashable: BytePath[];
  dirs: Set<BytePath>;
  /** The symlinks among the files. */
  symlinks: Set<BytePath>;
  /** One line per file or directory that could not be read. */
  problems: string[];
  bytes: number;
  /** Which hasher the pool's threads used, as their results say. */
  hasher: HasherName;
}

/** The task module, loaded on this thread the first time a walk starts before the pool's threads have. */
let tasksHere: Promise<typeof import('../workers/tasks.js')> | undefined;

export interface HashOptions {
  pool: WorkerPool;
  skip?: ReadonlySet<BytePath>;
  signal?: AbortSignal;
  onProgress?: (filesHashed: number, bytesHashed: number) => void;
}

/**
 * Hashes every file below `root` (absolute, as bytes) on the pool's threads, which also walk the
 * tree: each task lists a few directories and hashes what they hold, so the main thread only
 * hands out directories and collects digests (and runs tasks itself while the threads start).
 */
export function hashTreeWithPool(root: Buffer, options: HashOptions): Promise<TreeHash> {
  // The hasher is set by each result; the root's walk always gives one.
  const tree: TreeHash = { digests: new Map(), unhashable: [], dirs: new Set(), symlinks: new Set(), problems: [], bytes: 0, hasher: 'crypto' };
  const rootPath = root.toString('latin1');
  const found: [BytePath, string][] = [];
  const dirs: BytePath[] = ['.'];
  const pendingFiles: BytePath[] = [];
  const limit = options.pool.threads * 4;
  const filesHashed = () => found.length + tree.unhashable.length;
  let inFlight = 0;
  // Until a pool thread has loaded (a tenth of a second), this thread runs one task at a time too:
  // a small tree is hashed before any has, and the restore goes on while they start.
  let runningHere = false;
  const here = <T>(run: (tasks: typeof import('../workers/tasks.js')) => T): Promise<T> | undefined => {
    if (options.pool.started || runningHere) return undefined;
    runningHere = true;
    tasksHere ??= import('../workers/tasks.js');
    // Each after a turn of the event loop, so that a thread's word that it has loaded is heard.
    return tasksHere.then((tasks) => new Promise<T>((resolve) => setImmediate(() => resolve(run(tasks)))))
      .finally(() => { runningHere = false; });
  };

  const collect = (paths: readonly BytePath[], result: HashResult) => {
    result.digests.forEach((digest, i) => {
      if (digest === null) tree.unhashable.push(paths[i]!);
      else found.push([paths[i]!, digest]);
    });
    for (const [i, reason] of result.errors) tree.problems.push(`${paths[i]}: cannot hash (${reason}); treated as changed`);
    tree.bytes += result.bytes;
    tree.hasher = result.hasher;
    options.onProgress?.(filesHashed(), tree.bytes);
  };
  const walked = (result: WalkHashResult) => {
    for (const dir of result.subdirs) {
      if (options.skip?.has(dir)) continue;
      tree.dirs.add(dir);
      dirs.push(dir);
    }
    for (const [dir, reason] of result.unreadable) tree.problems.push(`cannot read directory ${dir}: ${reason}`);
    for (const path of result.others) {
      tree.unhashable.push(path);
      tree.problems.push(`${path}: not a regular file or symlink; treated as changed`);
    }
    for (const link of result.symlinks) tree.symlinks.add(link);
    collect([...result.files, ...result.symlinks], result.hashed);
    // One by one: a directory of a million files would overflow a spread's arguments.
    for (const path of result.pending) pendingFiles.push(path);
  };
  /** A batch of the files walking tasks handed back, once there are enough or nothing else to do. */
  const fileTask = (): HashTask | undefined => {
    const size = batchSize(filesHashed(), tree.bytes);
    if (pendingFiles.length === 0 || (pendingFiles.length < size && dirs.length > 0)) return undefined;
    return { root: rootPath, files: pendingFiles.splice(-size), symlinks: [] };
  };

  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (error: unknown) => {
      failed = true;
      reject(error);
    };
    const pump = () => {
      if (failed) return;
      if (options.signal?.aborted) return fail(options.signal.reason);
      while (inFlight < limit && (pendingFiles.length > 0 || dirs.length > 0)) {
        inFlight++;
        const settle = () => {
          inFlight--;
          pump();
        };
        const files = fileTask();
        if (files) {
          (here((tasks) => tasks.hash(files)) ?? options.pool.hash(files, options.signal)).then((result) => collect(files.files, result)).then(settle, fail);
        } else {
          // Share out the known directories among the tasks that can run at once.
          const taken = dirs.splice(-Math.min(64, Math.ceil(dirs.length / limit)));
          const task = { root: rootPath, dirs: taken, budget: TASK_BYTES };
          (here((tasks) => tasks.walkHash(task)) ?? options.pool.walkHash(task, options.signal)).then(walked).then(settle, fail);
        }
      }
      if (inFlight === 0) {
        tree.digests = sortManifest(found);
        tree.unhashable.sort();
        resolve(tree);
      }
    };
    pump();
  });
}

export interface HashTreeOptions {
  /** Worker threads. Default: the number of cores. */
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (filesHashed: number, bytesHashed: number) => void;
}

/** MD5 of every file below `dir` (symlinks: of their target), sorted by path, on a worker pool. */
export async function hashTree(dir: string, options: HashTreeOptions = {}): Promise<TreeHash> {
  const problem = options.threads === undefined ? undefined : checkPositiveInteger('threads', options.threads);
  if (problem) throw new ConfigError([problem]);
  return withPool(undefined, options.threads, (pool) =>
    hashTreeWithPool(Buffer.from(resolve(dir)), { pool, signal: options.signal, onProgress: options.onProgress }));
}
