// Ranged reads for every store: its own where it has one, else the object read from its start.
import type { Store } from './store.js';

/** Bytes [start, end) of an object (fewer where it ends before), or undefined when there is no such object. */
export async function readRange(store: Store, key: string, start: number, end: number, signal?: AbortSignal, into?: Buffer,
  filled?: (bytes: number) => void): Promise<Buffer | undefined> {
  if (store.getRange) return store.getRange(key, start, end, signal, into, filled);
  return rangeOf(await store.get(key, signal), start, end, into, filled);
}

/**
 * Bytes [start, end) of a stream (fewer where it ends before), in `into` when given, `filled` told
 * as they arrive (see Store.getRange); read no further than `end`.
 */
export async function rangeOf(body: AsyncIterable<Buffer> | undefined, start: number, end: number, into?: Buffer,
  filled?: (bytes: number) => void): Promise<Buffer | undefined> {
  if (!body) return undefined;
  const data = into ?? Buffer.allocUnsafe(end - start);
  let at = 0;
  let length = 0;
  for await (const chunk of body) {
    const from = Math.max(start - at, 0);
    const to = Math.min(end - at, chunk.length);
    if (to > from) {
      length += chunk.copy(data, length, from, to);
      filled?.(length);
    }
    at += chunk.length;
    if (at >= end) break;
  }
  return data.subarray(0, length);
}
