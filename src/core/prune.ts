/** A cache archive found in a store. */
export interface CacheObject {
  key: string;
  /** The cache name the key belongs to. */
  name: string;
  size: number;
  modified: Date;
}

const ARCHIVE_KEY = /^(.+)\/v\d+-[0-9a-f]{16}\.tar(\.gz|\.zst)?$/;

/** The cache name of an archive key, or undefined for anything else (digests, temporary files). */
export function cacheNameOf(key: string): string | undefined {
  return ARCHIVE_KEY.exec(key)?.[1];
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** "90s", "30m", "12h", "7d", "2w" → milliseconds; undefined when not of that form. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([smhdw])$/.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2]!]! : undefined;
}

export interface PruneRule {
  /** Delete only archives older than this many milliseconds. */
  olderThanMs?: number;
  /** Never delete the newest `keep` archives of each name. */
  keep?: number;
}

/**
 * The archives a prune deletes: those older than `olderThanMs` (when given) that are not among the
 * newest `keep` of their name (when given). With neither rule, nothing.
 */
export function selectForPrune(objects: readonly CacheObject[], rule: PruneRule, now: number): CacheObject[] {
  if (rule.olderThanMs === undefined && rule.keep === undefined) return [];
  const byName = new Map<string, CacheObject[]>();
  for (const object of objects) byName.set(object.name, [...(byName.get(object.name) ?? []), object]);
  const doomed: CacheObject[] = [];
  for (const group of byName.values()) {
    group.sort((a, b) => b.modified.getTime() - a.modified.getTime() || (a.key < b.key ? -1 : 1));
    group.forEach((object, index) => {
      const old = rule.olderThanMs === undefined || now - object.modified.getTime() > rule.olderThanMs;
      const spare = rule.keep === undefined || index >= rule.keep;
      if (old && spare) doomed.push(object);
    });
  }
  return doomed.sort((a, b) => (a.key < b.key ? -1 : 1));
}
