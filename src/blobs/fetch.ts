// Reading blobs from packs: ranged reads, blobs that lie close together coalesced into runs, so a
// restore of many small files makes few requests and holds at most FETCHES runs in memory.
import { storedSize, type BlobLocation } from '../core/blobs.js';

/** Blobs closer than GAP are read in one request of at most RUN bytes; FETCHES runs at a time. */
const GAP = 1 << 20;
export const RUN = 32 << 20;
export const FETCHES = 4;

/** A range of a pack holding one or more wanted blobs. */
export interface Run {
  pack: string;
  start: number;
  end: number;
  blobs: [id: string, location: BlobLocation][];
}

/** The runs that read `wanted` (each blob at most RUN bytes in its pack; bigger ones are read alone, in pieces). */
export function runsOf(wanted: Iterable<[string, BlobLocation]>, run = RUN): Run[] {
  const sorted = [...wanted].sort(([, a], [, b]) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset));
  const runs: Run[] = [];
  for (const [id, l] of sorted) {
    const last = runs.at(-1);
    const end = l.offset + storedSize(l);
    if (last && last.pack === l.pack && l.offset - last.end <= GAP && end - last.start <= run) {
      last.end = Math.max(last.end, end);
      last.blobs.push([id, l]);
    } else runs.push({ pack: l.pack, start: l.offset, end, blobs: [[id, l]] });
  }
  return runs;
}

/** A fetched run's blobs go to the pool in pieces of about this many bytes of the pack. */
export const PIECE = 4 << 20;

/**
 * `items` in consecutive groups (tasks for the pool), each within every one of `limits` by the
 * summed `weights` of its items; an item over a limit makes a group alone.
 */
export function groupsOf<T>(items: readonly T[], weights: (item: T) => readonly number[], limits: readonly number[]): T[][] {
  const groups: T[][] = [];
  let sums = limits.map(() => Infinity);
  for (const item of items) {
    const weight = weights(item);
    if (weight.some((w, i) => sums[i]! + w > limits[i]!)) {
      groups.push([]);
      sums = limits.map(() => 0);
    }
    groups.at(-1)!.push(item);
    sums = sums.map((sum, i) => sum + weight[i]!);
  }
  return groups;
}

/**
 * Runs `step` on each item with at most `lanes` at a time. After the first failure no new item
 * starts; every step under way is waited for (they write into staging), then the failure is thrown.
 */
export async function inLanes<T>(items: readonly T[], lanes: number, step: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await step(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, items.length) }, lane));
  if (failure) throw failure.error;
}
