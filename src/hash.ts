import { sortManifest } from './core/manifest.js';
import type { BytePath } from './core/paths.js';
import { resolve } from 'node:path';
import { checkPositiveInteger } from './core/config.js';
import { ConfigError } from './errors.js';
import { forEachBounded, withPool, type WorkerPool } from './pool.js';
import { walkTree } from './walk.js';
import type { HashTask } from '../workers/types.js';

/**
 * Files per worker task. The SIMD hasher hashes eight files side by side, so a task needs many
 * files to keep its lanes full, and many small files amortise messaging; but big files need tasks
 * small enough that no worker is left with most of the bytes at the end. The walk does not know
 * sizes, so the batch adapts to the average file size hashed so far, aiming at about 16 MiB (10 ms
 * of hashing) per task.
 */
function batchSize(filesHashed: number, bytesHashed: number): number {
  if (filesHashed === 0) return 16;
  return Math.min(256, Math.max(16, Math.round((16 << 20) / Math.max(1, bytesHashed / filesHashed))));
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
}

export interface HashOptions {
  pool: WorkerPool;
  skip?: ReadonlySet<BytePath>;
  signal?: AbortSignal;
  onProgress?: (filesHashed: number) => void;
}

async function* batches(root: Buffer, tree: TreeHash, hashed: { files: number },
  options: HashOptions): AsyncGenerator<HashTask> {
  const rootPath = root.toString('latin1');
  let task: HashTask = { root: rootPath, files: [], symlinks: [] };
  for await (const entries of walkTree(root, { ...options, onProblem: (p) => tree.problems.push(p) })) {
    for (const { path, kind } of entries) {
      if (kind === 'dir') tree.dirs.add(path);
      else if (kind === 'file') task.files.push(path);
      else if (kind === 'symlink') {
        task.symlinks.push(path);
        tree.symlinks.add(path);
      }
      else {
        tree.unhashable.push(path);
        tree.problems.push(`${path}: not a regular file or symlink; treated as changed`);
      }
      if (task.files.length + task.symlinks.length >= batchSize(hashed.files, tree.bytes)) {
        yield task;
        task = { root: rootPath, files: [], symlinks: [] };
      }
    }
  }
  if (task.files.length + task.symlinks.length > 0) yield task;
}

/** Hashes every file below `root` (absolute, as bytes) on the pool's threads. */
export async function hashTreeWithPool(root: Buffer, options: HashOptions): Promise<TreeHash> {
  const tree: TreeHash = { digests: new Map(), unhashable: [], dirs: new Set(), symlinks: new Set(), problems: [], bytes: 0 };
  const found: [BytePath, string][] = [];
  const hashed = { files: 0 };
  await forEachBounded(batches(root, tree, hashed, options), options.pool.threads * 8,
    (task) => options.pool.hash(task, options.signal),
    (result, task) => {
      const paths = [...task.files, ...task.symlinks];
      result.digests.forEach((digest, i) => {
        if (digest === null) tree.unhashable.push(paths[i]!);
        else found.push([paths[i]!, digest]);
      });
      for (const [i, reason] of result.errors) tree.problems.push(`${paths[i]}: cannot hash (${reason}); treated as changed`);
      tree.bytes += result.bytes;
      hashed.files += paths.length;
      options.onProgress?.(found.length + tree.unhashable.length);
    });
  tree.digests = sortManifest(found);
  tree.unhashable.sort();
  return tree;
}

export interface HashTreeOptions {
  /** Worker threads. Default: the number of cores. */
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (filesHashed: number) => void;
}

/** MD5 of every file below `dir` (symlinks: of their target), sorted by path, on a worker pool. */
export async function hashTree(dir: string, options: HashTreeOptions = {}): Promise<TreeHash> {
  const problem = options.threads === undefined ? undefined : checkPositiveInteger('threads', options.threads);
  if (problem) throw new ConfigError([problem]);
  return withPool(undefined, options.threads, (pool) =>
    hashTreeWithPool(Buffer.from(resolve(dir)), { pool, signal: options.signal, onProgress: options.onProgress }));
}
