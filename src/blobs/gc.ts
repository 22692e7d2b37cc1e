// Garbage collection of the blob layout, the effects: what a save checks so that it never names a
// blob prune may delete, and prune's mark-and-sweep of the packs (decisions in core/gc.ts; the
// protocol in docs/design.md, "Prune and garbage collection").
import { Readable } from 'node:stream';
import type { BlobLocation, BlobManifest } from '../core/blobs.js';
import { liveBytes, planGc, unusablePacks, type GcPlan, type PackObject } from '../core/gc.js';
import { MARKS_PREFIX, PACKS_PREFIX } from '../core/key.js';
import type { Store } from '../stores/index.js';

async function unusable(store: Store, named: Iterable<string>, signal?: AbortSignal): Promise<Set<string>> {
  const [packs, marks] = await Promise.all([store.list(signal, PACKS_PREFIX), store.list(signal, MARKS_PREFIX)]);
  return unusablePacks(named, new Set(packs.map((object) => object.key)), marks.map((object) => object.key));
}

/** Drops from `known` the blobs of packs that are gone or marked (for collection or repacking): a save uploads those again. */
export async function keepUsable(store: Store, known: Map<string, BlobLocation>, signal?: AbortSignal): Promise<Map<string, BlobLocation>> {
  const dropped = await unusable(store, new Set([...known.values()].map((location) => location.pack)), signal);
  for (const [id, location] of known) if (dropped.has(location.pack)) known.delete(id);
  return known;
}

/**
 * Before a save writes its manifest: checks again that no pack it names was marked or deleted since
 * keepUsable looked, and throws if one was (the save fails with a warning; the cache stays as it
 * was). Then a sweep can delete a pack the manifest names only if the grace period passes between
 * this check and the manifest's write, whatever grace prune is given.
 */
export async function recheckPacks(store: Store, named: ReadonlyMap<string, BlobLocation>, signal?: AbortSignal): Promise<void> {
  const gone = await unusable(store, new Set([...named.values()].map((location) => location.pack)), signal);
  if (gone.size > 0) throw new Error(`prune marked or collected ${[...gone][0]} while this save ran; not saved (the next save uploads its blobs again)`);
}

export interface GcOptions {
  graceMs: number;
  repackBelow: number;
  /** The time marks and packs are aged against. Default: now. */
  now?: number;
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface GcResult extends GcPlan {
  /** Bytes of every pack. */
  packBytes: number;
}

/**
 * One mark-and-sweep over the packs, after prune deleted what it selected: `manifests` are the
 * remaining manifests (read after the deletions), `packs` and `marks` were listed before them.
 * Deletes each pack before its marks, so a run cut short leaves marks (cleared by the next run),
 * never an unmarked pack it meant to delete.
 */
export async function collectPacks(store: Store, manifests: Iterable<BlobManifest>, packs: readonly PackObject[],
  marks: readonly { key: string; modified: Date }[], options: GcOptions): Promise<GcResult> {
  const plan = planGc({
    packs, marks, live: liveBytes([...manifests].map((manifest) => manifest.blobs)),
    now: options.now ?? Date.now(), graceMs: options.graceMs, repackBelow: options.repackBelow,
  });
  if (!options.dryRun) {
    for (const pack of plan.deletePacks) await store.delete(pack.key, options.signal);
    for (const key of plan.deleteMarks) await store.delete(key, options.signal);
    for (const { key } of plan.mark) await store.put(key, Readable.from([]), options.signal);
  }
  return { ...plan, packBytes: packs.reduce((sum, pack) => sum + pack.size, 0) };
}
