/** One line of the events file: what one restore or save did. */
export interface CacheEvent {
  v: 1;
  /** ISO 8601. */
  time: string;
  command: 'restore' | 'save';
  cacheName: string;
  /** restore: hit, fallback, miss or error; save: saved, skipped or error. */
  result: string;
  key: string | null;
  seconds: number;
  /** restore: source files hashed; save: files archived. */
  files: number;
  /** restore: sources changed or new since the cache was saved (what the build recompiles). */
  changed?: number;
  /** restore: artifacts restored (what the build reuses). */
  reused?: number;
  /** restore: bytes of artifacts restored; save: bytes written to the store. */
  bytes: number;
}

export interface NameStats {
  cacheName: string;
  restores: number;
  hits: number;
  fallbacks: number;
  misses: number;
  /** (hits + fallbacks) / restores; null without restores. */
  hitRate: number | null;
  /** Artifacts restored, summed over restores. */
  reused: number;
  /** Sources changed or new at restore, summed. */
  changed: number;
  restoredBytes: number;
  saves: number;
  savedBytes: number;
  /** Seconds spent in restore and save. */
  seconds: number;
}

/** Parses an events file; lines that are not events (cut short, from a newer version) are counted, not fatal. */
export function parseEvents(text: string): { events: CacheEvent[]; bad: number } {
  const events: CacheEvent[] = [];
  let bad = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      const event = JSON.parse(line) as CacheEvent;
      if (event.v === 1 && (event.command === 'restore' || event.command === 'save') && typeof event.cacheName === 'string'
        && !Number.isNaN(Date.parse(event.time))) events.push(event);
      else bad++;
    } catch {
      bad++;
    }
  }
  return { events, bad };
}

/** Totals per cache name (sorted) and over all names, of the events at or after `since` (ms). */
export function summarize(events: readonly CacheEvent[], since: number, name?: string): { names: NameStats[]; total: NameStats } {
  const empty = (cacheName: string): NameStats => ({
    cacheName, restores: 0, hits: 0, fallbacks: 0, misses: 0, hitRate: null, reused: 0, changed: 0, restoredBytes: 0, saves: 0, savedBytes: 0, seconds: 0,
  });
  const byName = new Map<string, NameStats>();
  const total = empty('(all)');
  for (const event of events) {
    if (Date.parse(event.time) < since || (name !== undefined && event.cacheName !== name)) continue;
    let stats = byName.get(event.cacheName);
    if (!stats) byName.set(event.cacheName, stats = empty(event.cacheName));
    for (const s of [stats, total]) {
      s.seconds += event.seconds;
      if (event.command === 'save') {
        if (event.result === 'saved') s.saves++;
        s.savedBytes += event.bytes;
        continue;
      }
      s.restores++;
      if (event.result === 'hit') s.hits++;
      else if (event.result === 'fallback') s.fallbacks++;
      else s.misses++;
      s.reused += event.reused ?? 0;
      s.changed += event.changed ?? 0;
      s.restoredBytes += event.bytes;
    }
  }
  const names = [...byName.values()].sort((a, b) => (a.cacheName < b.cacheName ? -1 : 1));
  for (const s of [...names, total]) s.hitRate = s.restores === 0 ? null : (s.hits + s.fallbacks) / s.restores;
  return { names, total };
}
