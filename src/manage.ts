import { cacheNameOf, selectForPrune, type CacheObject, type PruneRule } from './core/prune.js';
import { checkPositiveInteger } from './core/config.js';
import { ConfigError } from './errors.js';
import { checkStoreLocation, openStore, type S3Settings, type Store } from './stores/index.js';

export interface StoreOptions {
  /** A directory, a file:// URL, s3://BUCKET[/PREFIX], or a Store object. */
  store: string | Store;
  s3?: S3Settings;
  signal?: AbortSignal;
}

async function withStore<T>(options: StoreOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const problem = checkStoreLocation(options.store);
  if (problem) throw new ConfigError([problem]);
  const store = await openStore(options.store, options.s3);
  try {
    return await fn(store);
  } finally {
    if (typeof options.store === 'string') store.close();
  }
}

async function cachesIn(store: Store, signal?: AbortSignal): Promise<CacheObject[]> {
  const caches: CacheObject[] = [];
  for (const object of await store.list(signal)) {
    const name = cacheNameOf(object.key);
    if (name !== undefined) caches.push({ ...object, name });
  }
  return caches.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : b.modified.getTime() - a.modified.getTime()));
}

/** Every cache archive in the store, by name, newest first. */
export function listCaches(options: StoreOptions): Promise<CacheObject[]> {
  return withStore(options, (store) => cachesIn(store, options.signal));
}

export interface PruneOptions extends StoreOptions, PruneRule {
  /** List what would be deleted, delete nothing. Default false. */
  dryRun?: boolean;
}

/** Deletes the archives the rule selects (see selectForPrune) and returns them. */
export async function pruneCaches(options: PruneOptions): Promise<CacheObject[]> {
  const problems = [
    options.keep === undefined ? undefined : checkPositiveInteger('keep', options.keep),
    options.olderThanMs === undefined || options.olderThanMs >= 0 ? undefined : `olderThan: must not be negative (got ${options.olderThanMs})`,
    options.keep === undefined && options.olderThanMs === undefined ? 'prune: give olderThan, keep, or both' : undefined,
  ].filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new ConfigError(problems);
  return withStore(options, async (store) => {
    const doomed = selectForPrune(await cachesIn(store, options.signal), options, Date.now());
    if (!options.dryRun) {
      for (const object of doomed) await store.delete(object.key, options.signal);
      await store.removeStale?.(options.signal);
    }
    return doomed;
  });
}
