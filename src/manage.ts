import { Readable } from 'node:stream';
import { collectPacks, type GcResult } from './blobs/gc.js';
import { readBlobManifest } from './blobs/restore.js';
import { storedSize, type BlobManifest } from './core/blobs.js';
import { checkPositiveInteger } from './core/config.js';
import { DEFAULT_GC_GRACE_MS, DEFAULT_REPACK_BELOW, liveBytes } from './core/gc.js';
import { cacheNameOf, isPackKey, parseCacheKey, parseMarkKey } from './core/key.js';
import { RESTORED_SUFFIX, selectForPrune, type CacheObject, type PruneRule } from './core/prune.js';
import { ArchiveError, ConfigError } from './core/errors.js';
import { checkStoreLocation, openStore, type S3Settings, type Store, type StoredObject } from './stores/index.js';

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

/** What a listing of the whole store holds, read once: the caches, the packs and marks, their figures. */
interface Inventory {
  caches: CacheObject[];
  /** The manifests read, by key. */
  manifests: Map<string, BlobManifest>;
  packs: StoredObject[];
  marks: StoredObject[];
  totals: StoreTotals;
}

/** ls's total: what the caches hold against what the store holds, so dedup is visible. */
export interface StoreTotals {
  /** Files in blob-layout caches plus the bytes of archives (compressed: their content is not read). */
  logical: number;
  /** Everything below, together. */
  stored: number;
  archives: number;
  manifests: number;
  packs: number;
  /** Of the packs, the bytes of packs no manifest names (prune collects them, after --gc-grace). */
  garbage: number;
}

const MANIFEST_READS = 8;

async function inventory(store: Store, signal?: AbortSignal): Promise<Inventory> {
  const objects = await store.list(signal);
  const restored = new Map(objects.filter((o) => o.key.endsWith(RESTORED_SUFFIX)).map((o) => [o.key.slice(0, -RESTORED_SUFFIX.length), o.modified]));
  const caches: CacheObject[] = [];
  const manifests = new Map<string, BlobManifest>();
  const totals: StoreTotals = { logical: 0, stored: 0, archives: 0, manifests: 0, packs: 0, garbage: 0 };
  const found = objects.map((object) => ({ object, parsed: parseCacheKey(object.key) }));
  // Manifests are read a few at a time: a GET each.
  const read = new Map<string, BlobManifest | 'damaged' | undefined>();
  const wanted = found.filter(({ parsed }) => parsed?.layout === 'blobs').map(({ object }) => object.key);
  for (let next = 0; next < wanted.length;) {
    await Promise.all(wanted.slice(next, next += MANIFEST_READS).map(async (key) => {
      // A manifest replaced since the listing is read as it is now; one damaged names nothing (restore refuses it too).
      read.set(key, await readBlobManifest(store, key, signal).catch((error: unknown) => {
        if (error instanceof ArchiveError) return 'damaged' as const;
        throw error;
      }));
    }));
  }
  for (const { object, parsed } of found) {
    if (!parsed) continue;
    const lastRestored = restored.get(object.key);
    const cache: CacheObject = { ...object, name: parsed.name, layout: parsed.layout, ...(lastRestored ? { lastRestored } : {}) };
    if (parsed.layout === 'archive') totals.archives += object.size;
    else {
      const manifest = read.get(object.key);
      if (!manifest) continue;
      totals.manifests += object.size;
      if (manifest !== 'damaged') {
        manifests.set(object.key, manifest);
        const blobs = new Map([...manifest.blobs].map(([id, location]) => [id, storedSize(location)]));
        Object.assign(cache, { blobs, logical: manifest.entries.reduce((sum, e) => sum + e.size, 0), size: object.size + [...blobs.values()].reduce((sum, n) => sum + n, 0) });
      }
    }
    totals.logical += cache.logical ?? cache.size;
    caches.push(cache);
  }
  const packs = objects.filter((o) => isPackKey(o.key));
  const marks = objects.filter((o) => parseMarkKey(o.key) !== undefined);
  const live = liveBytes([...manifests.values()].map((manifest) => manifest.blobs));
  for (const pack of packs) {
    totals.packs += pack.size;
    if (!live.has(pack.key)) totals.garbage += pack.size;
  }
  totals.stored = totals.archives + totals.manifests + totals.packs;
  caches.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : b.modified.getTime() - a.modified.getTime()));
  return { caches, manifests, packs, marks, totals };
}

/** Every cache in the store (archives and blob-layout manifests), by name, newest first. */
export function listCaches(options: StoreOptions): Promise<CacheObject[]> {
  return withStore(options, async (store) => (await inventory(store, options.signal)).caches);
}

/** The caches and the store's totals (logical against stored bytes). */
export function listStore(options: StoreOptions): Promise<{ caches: CacheObject[]; totals: StoreTotals }> {
  return withStore(options, async (store) => {
    const { caches, totals } = await inventory(store, options.signal);
    return { caches, totals };
  });
}

export interface PruneOptions extends StoreOptions, PruneRule {
  /** List what would be deleted, delete nothing. Default false. */
  dryRun?: boolean;
  /** How long a pack carries its mark before it may be deleted, in milliseconds. Default 1 hour. */
  gcGraceMs?: number;
  /** Packs with live bytes below this fraction of their size are marked for repacking; 0: never. Default 0.5. */
  repackBelow?: number;
  /** The time rules and marks are aged against, in milliseconds since the epoch (for tests). Default now. */
  now?: number;
}

export interface PruneResult {
  deleted: CacheObject[];
  /** The blob layout's mark-and-sweep (planned only, with dryRun). */
  gc: GcResult;
}

/** Deletes the caches the rule selects (see selectForPrune; none with only gcGraceMs or repackBelow), then collects packs (see collectPacks). */
export async function pruneStore(options: PruneOptions): Promise<PruneResult> {
  const problems = [
    options.keep === undefined ? undefined : checkPositiveInteger('keep', options.keep),
    options.olderThanMs === undefined || options.olderThanMs >= 0 ? undefined : `olderThan: must not be negative (got ${options.olderThanMs})`,
    options.maxSize === undefined ? undefined : checkPositiveInteger('maxSize', options.maxSize),
    options.keep === undefined && options.olderThanMs === undefined && options.maxSize === undefined && options.gcGraceMs === undefined
      && options.repackBelow === undefined ? 'prune: give olderThan, keep, maxSize, or several (or gcGraceMs alone to collect packs only)' : undefined,
    options.gcGraceMs === undefined || options.gcGraceMs >= 0 ? undefined : `gcGrace: must not be negative (got ${options.gcGraceMs})`,
    options.repackBelow === undefined || (options.repackBelow >= 0 && options.repackBelow <= 1) ? undefined : `repackBelow: must be from 0 to 1 (got ${options.repackBelow})`,
  ].filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new ConfigError(problems);
  return withStore(options, async (store) => {
    // Taken before the listing: a mark old enough against it is older still when manifests are read (see core/gc.ts).
    const now = options.now ?? Date.now();
    const found = await inventory(store, options.signal);
    const doomed = selectForPrune(found.caches, options, now);
    if (!options.dryRun) {
      for (const object of doomed) {
        await store.delete(object.key, options.signal);
        if (object.lastRestored) await store.delete(`${object.key}${RESTORED_SUFFIX}`, options.signal);
      }
    }
    for (const object of doomed) found.manifests.delete(object.key);
    const gc = await collectPacks(store, found.manifests.values(), found.packs, found.marks, {
      graceMs: options.gcGraceMs ?? DEFAULT_GC_GRACE_MS, repackBelow: options.repackBelow ?? DEFAULT_REPACK_BELOW, now,
      dryRun: options.dryRun === true, ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!options.dryRun) await store.removeStale?.(options.signal);
    return { deleted: doomed, gc };
  });
}

/** Deletes the caches the rule selects and collects packs (see pruneStore); returns the caches deleted. */
export async function pruneCaches(options: PruneOptions): Promise<CacheObject[]> {
  return (await pruneStore(options)).deleted;
}

/** The cache keys of one cache name (either layout, any settings or salt), for finding one and saying why not. */
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
