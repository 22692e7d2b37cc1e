import { Readable } from 'node:stream';
import { cacheNameOf } from './core/key.js';
import { RESTORED_SUFFIX, selectForPrune, type CacheObject, type PruneRule } from './core/prune.js';
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
  const objects = await store.list(signal);
  const restored = new Map(objects.filter((o) => o.key.endsWith(RESTORED_SUFFIX)).map((o) => [o.key.slice(0, -RESTORED_SUFFIX.length), o.modified]));
  for (const object of objects) {
    const name = cacheNameOf(object.key);
    const lastRestored = restored.get(object.key);
    if (name !== undefined) caches.push({ ...object, name, ...(lastRestored ? { lastRestored } : {}) });
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
    options.maxSize === undefined ? undefined : checkPositiveInteger('maxSize', options.maxSize),
    options.keep === undefined && options.olderThanMs === undefined && options.maxSize === undefined ? 'prune: give olderThan, keep, maxSize, or several' : undefined,
  ].filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new ConfigError(problems);
  return withStore(options, async (store) => {
    const doomed = selectForPrune(await cachesIn(store, options.signal), options, Date.now());
    if (!options.dryRun) {
      for (const object of doomed) {
        await store.delete(object.key, options.signal);
        if (object.lastRestored) await store.delete(`${object.key}${RESTORED_SUFFIX}`, options.signal);
      }
      await store.removeStale?.(options.signal);
    }
    return doomed;
  });
}

/** The archive keys of one cache name (under any settings or salt), for finding one and saying why not. */
export async function keysOfCache(store: Store, name: string, signal?: AbortSignal): Promise<string[]> {
  return (await store.list(signal, `${name}/`)).map((o) => o.key).filter((k) => cacheNameOf(k) === name);
}

/**
 * Records that the archive at `key` was restored (for prune's maxSize), as the time of an empty
 * object beside it. Bookkeeping only: a store that refuses it (a read-only daemon) changes nothing.
 */
export async function markRestored(store: Store, key: string, signal?: AbortSignal): Promise<void> {
  await store.put(`${key}${RESTORED_SUFFIX}`, Readable.from([]), signal).catch(() => {});
}
