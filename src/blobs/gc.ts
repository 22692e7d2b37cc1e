// Garbage collection of the blob layout, the effects: what a save checks so that it never names a
// blob prune may delete, and prune's mark-and-sweep of the packs (decisions in core/gc.ts; the
// protocol in docs/design.md, "Prune and garbage collection").
import { Readable } from 'node:stream';
import type { BlobLocation, BlobManifest } from '../core/blobs.js';
import { DEFAULT_GC_GRACE_MS, liveBytes, planGc, unusablePacks, type GcPlan, type PackObject } from '../core/gc.js';
import { MARKS_PREFIX, PACKS_PREFIX } from '../core/key.js';
import type { Store } from '../stores/index.js';

/** When each known-blob map's packs were last checked against the listing (see keepUsable). */
const CHECKED = new WeakMap<ReadonlyMap<string, BlobLocation>, number>();

async function unusable(store: Store, named: Iterable<string>, signal?: AbortSignal): Promise<Set<string>> {
  const [packs, marks] = await Promise.all([store.list(signal, PACKS_PREFIX), store.list(signal, MARKS_PREFIX)]);
  return unusablePacks(named, new Set(packs.map((object) => object.key)), marks.map((object) => object.key));
}

/**
 * Drops from `known` the blobs of packs that are gone or marked (for collection or repacking): a
 * save uploads those again. Records when it checked, for recheckPacks.
 */
export async function keepUsable(store: Store, known: Map<string, BlobLocation>, signal?: AbortSignal): Promise<Map<string, BlobLocation>> {
  const checked = Date.now();
  const dropped = await unusable(store, new Set([...known.values()].map((location) => location.pack)), signal);
  for (const [id, location] of known) if (dropped.has(location.pack)) known.delete(id);
  CHECKED.set(known, checked);
  return known;
}

/**
 * Before a save writes its manifest: when its check of the packs (keepUsable on `known`) is older
 * than half the grace period, checks again that no pack the manifest names was marked or deleted
 * since, and throws if one was (the save fails with a warning; the cache stays as it was). A save
 * that knew no blobs names only its own new pack, which prune leaves alone for the grace period.
 */
export async function recheckPacks(store: Store, known: ReadonlyMap<string, BlobLocation>, named: ReadonlyMap<string, BlobLocation>,
  signal?: AbortSignal, now = Date.now(), graceMs = DEFAULT_GC_GRACE_MS): Promise<void> {
  const checked = CHECKED.get(known);
  if (checked === undefined || now - checked <= graceMs / 2) return;
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
