import { resolve } from 'node:path';
import { checkPositiveInteger } from './core/config.js';
import { ConfigError } from './errors.js';
import { hashTreeWithPool, type TreeHash } from './hash.js';
import { withPool } from './pool.js';

export { restore } from './restore.js';
export { save } from './save.js';
export { formatManifest, parseManifest, diffManifests, type Manifest, type ManifestDiff } from './core/manifest.js';
export { planRestore, STORE_MTIME, type RestorePlan } from './core/plan.js';
export { objectKey } from './core/key.js';
export { ArchiveError, ConfigError, NbcError, StoreError } from './errors.js';
export type { CacheOptions, RestoreOptions, SaveOptions } from './options.js';
export type { HashReport, Report, RestoreReport, SaveReport, ExplainLine, Attempt } from './report.js';
export type { TreeHash } from './hash.js';
export { WorkerPool } from './pool.js';
export { listCaches, pruneCaches, type PruneOptions, type StoreOptions } from './manage.js';
export { FileStore } from './stores/file.js';
export { S3Store, S3_DEFAULTS, type S3Settings } from './stores/s3.js';
export type { Store, StoredObject } from './stores/store.js';

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
