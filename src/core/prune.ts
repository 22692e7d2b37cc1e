/** A cache found in a store: an archive, or a blob-layout manifest. */
export interface CacheObject {
  key: string;
  /** The cache name the key belongs to. */
  name: string;
  layout: 'archive' | 'blobs';
  /**
   * Bytes it takes in the store: an archive's; a manifest's plus its blobs' (a blob shared with
   * other caches counts in each of them: see `blobs` for what deleting it frees).
   */
  size: number;
  /** Blob layout: bytes of the files it holds (undefined: its manifest could not be read). */
  logical?: number;
  /** Blob layout: its blobs and their sizes. */
  blobs?: ReadonlyMap<string, number>;
  modified: Date;
  /** When a restore last used it (its marker object, see RESTORED_SUFFIX); absent: never. */
  lastRestored?: Date;
}

/**
 * Beside each archive a restore used, an empty object `<key>.restored` whose time is the last
 * restore: any store can write it (a directory, S3, the daemon passing it on), none has to keep
 * access times. Not an archive key, so listings of archives leave it out.
 */
export const RESTORED_SUFFIX = '.restored';

/** When the archive was last of use: its last restore, or its save if later or never restored. */
export function lastUsed(object: CacheObject): number {
  return Math.max(object.modified.getTime(), object.lastRestored?.getTime() ?? 0);
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** "90s", "30m", "12h", "7d", "2w" → milliseconds; undefined when not of that form. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([smhdw])$/.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2]!]! : undefined;
}

/** Which caches (archives and blob-layout manifests alike) a prune deletes. */
export interface PruneRule {
  /** Delete only caches older than this many milliseconds. */
  olderThanMs?: number;
  /** Never delete the newest `keep` caches of each name. */
  keep?: number;
  /**
   * Then delete the least recently used caches (see lastUsed) until the rest hold at most this
   * many bytes (a blob shared by several counted once), as ccache's max_size; the newest `keep` of
   * each name stay even so.
   */
  maxSize?: number;
}

/**
 * The archives a prune deletes: those older than `olderThanMs` (when given) that are not among the
 * newest `keep` of their name (when given; alone, it deletes the rest); then, with `maxSize`, the
 * least recently used of the others until the rest fit. With no rule, nothing.
 */
export function selectForPrune(objects: readonly CacheObject[], rule: PruneRule, now: number): CacheObject[] {
  if (rule.olderThanMs === undefined && rule.keep === undefined && rule.maxSize === undefined) return [];
  const byAge = rule.olderThanMs !== undefined || rule.maxSize === undefined;
  const byName = new Map<string, CacheObject[]>();
  for (const object of objects) byName.set(object.name, [...(byName.get(object.name) ?? []), object]);
  const doomed: CacheObject[] = [];
  const evictable: CacheObject[] = [];
  for (const group of byName.values()) {
    group.sort((a, b) => b.modified.getTime() - a.modified.getTime() || (a.key < b.key ? -1 : 1));
    group.forEach((object, index) => {
      const old = rule.olderThanMs === undefined || now - object.modified.getTime() > rule.olderThanMs;
      const spare = rule.keep === undefined || index >= rule.keep;
      if (byAge && old && spare) doomed.push(object);
      else if (spare) evictable.push(object);
    });
  }
  if (rule.maxSize !== undefined) {
    const gone = new Set(doomed);
    // What the rest holds: archives, manifests, and each blob once however many caches name it.
    const holders = new Map<string, number>();
    let size = 0;
    const take = (object: CacheObject, sign: 1 | -1) => {
      size += sign * (object.size - [...object.blobs?.values() ?? []].reduce((sum, bytes) => sum + bytes, 0));
      for (const [id, bytes] of object.blobs ?? []) {
        const count = (holders.get(id) ?? 0) + sign;
        holders.set(id, count);
        if (count === (sign === 1 ? 1 : 0)) size += sign * bytes;
      }
    };
    for (const object of objects) if (!gone.has(object)) take(object, 1);
    evictable.sort((a, b) => lastUsed(a) - lastUsed(b) || (a.key < b.key ? -1 : 1));
    for (const object of evictable) {
      if (size <= rule.maxSize) break;
      doomed.push(object);
      take(object, -1);
    }
  }
  return doomed.sort((a, b) => (a.key < b.key ? -1 : 1));
}
