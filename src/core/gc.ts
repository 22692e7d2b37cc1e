// Garbage collection of the blob layout's packs, the pure half: which packs to mark, unmark and
// delete (docs/design.md, "Prune and garbage collection"). A pack is deleted only by a prune run
// that finds it unreferenced while it carries a mark at least the grace period old, so a save that
// checked the marks before the mark was made has had the whole grace period to write its manifest.
import { markKey, parseMarkKey, type MarkKind } from './key.js';
import { storedSize, type BlobLocation } from './blobs.js';
import { BLOCK_SIZE } from './ustar.js';

/** How long a pack carries its mark before a prune may delete it; saves re-check after half of it. */
export const DEFAULT_GC_GRACE_MS = 60 * 60_000;
/** Packs whose live bytes are below this fraction of their size are marked for repacking. */
export const DEFAULT_REPACK_BELOW = 0.5;

export interface PackObject {
  key: string;
  size: number;
  modified: Date;
}

export interface GcInput {
  packs: readonly PackObject[];
  /** The mark objects (any other key is ignored). */
  marks: readonly { key: string; modified: Date }[];
  /** Per pack, the bytes of the blobs the remaining manifests name in it (see liveBytes). */
  live: ReadonlyMap<string, number>;
  now: number;
  graceMs: number;
  /** 0 turns repacking off. */
  repackBelow: number;
}

export interface GcPlan {
  /** Packs to delete (then their marks, in deleteMarks). */
  deletePacks: PackObject[];
  /** Marks to delete: of deleted packs, of packs named again (gc marks), of packs that are gone. */
  deleteMarks: string[];
  /** Marks to make. */
  mark: { key: string; kind: MarkKind }[];
  /** Bytes of packs no manifest names (deleted now or later). */
  garbage: number;
  /** Bytes of packs some manifest names. */
  referenced: number;
}

/** The bytes each pack holds for `manifests`' blobs, each blob counted once: its tar header, content and padding. */
export function liveBytes(manifests: Iterable<ReadonlyMap<string, BlobLocation>>): Map<string, number> {
  const seen = new Set<string>();
  const live = new Map<string, number>();
  for (const blobs of manifests) {
    for (const [id, location] of blobs) {
      const where = `${location.pack} ${id}`;
      if (seen.has(where)) continue;
      seen.add(where);
      live.set(location.pack, (live.get(location.pack) ?? 0) + BLOCK_SIZE + Math.ceil(storedSize(location) / BLOCK_SIZE) * BLOCK_SIZE);
    }
  }
  return live;
}

/**
 * One prune run's decisions. Unreferenced packs: deleted when a mark of theirs is at least
 * `graceMs` old, else marked `gc` (unless younger than `graceMs`: a save may be about to name its
 * own new pack). Referenced packs lose their `gc` mark and get a `repack` mark when their live
 * fraction is below `repackBelow` (saves then upload their live blobs again, elsewhere). Marks of
 * packs that are gone are deleted.
 */
export function planGc(input: GcInput): GcPlan {
  const marks = new Map<string, { key: string; kind: MarkKind; modified: Date }[]>();
  for (const object of input.marks) {
    const mark = parseMarkKey(object.key);
    if (mark) marks.set(mark.pack, [...(marks.get(mark.pack) ?? []), { key: object.key, kind: mark.kind, modified: object.modified }]);
  }
  const plan: GcPlan = { deletePacks: [], deleteMarks: [], mark: [], garbage: 0, referenced: 0 };
  const old = (time: Date) => input.now - time.getTime() >= input.graceMs;
  for (const pack of [...input.packs].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    const own = marks.get(pack.key) ?? [];
    marks.delete(pack.key);
    const live = input.live.get(pack.key) ?? 0;
    if (live === 0) {
      plan.garbage += pack.size;
      if (own.some((mark) => old(mark.modified))) {
        plan.deletePacks.push(pack);
        plan.deleteMarks.push(...own.map((mark) => mark.key));
      } else if (own.length === 0 && old(pack.modified)) plan.mark.push({ key: markKey(pack.key, 'gc'), kind: 'gc' });
      continue;
    }
    plan.referenced += pack.size;
    plan.deleteMarks.push(...own.filter((mark) => mark.kind === 'gc').map((mark) => mark.key));
    if (!own.some((mark) => mark.kind === 'repack') && live < input.repackBelow * pack.size) {
      plan.mark.push({ key: markKey(pack.key, 'repack'), kind: 'repack' });
    }
  }
  // What is left are marks of packs that no longer exist.
  for (const gone of marks.values()) plan.deleteMarks.push(...gone.map((mark) => mark.key));
  return plan;
}

/** The packs a save must not name: those marked (for collection or repacking) and those not listed. */
export function unusablePacks(named: Iterable<string>, packs: ReadonlySet<string>, markKeys: Iterable<string>): Set<string> {
  const marked = new Set([...markKeys].map((key) => parseMarkKey(key)?.pack).filter((pack) => pack !== undefined));
  return new Set([...named].filter((pack) => !packs.has(pack) || marked.has(pack)));
}
