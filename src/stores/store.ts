import type { Readable } from 'node:stream';

export interface StoredObject {
  /** Key relative to the store's location. */
  key: string;
  size: number;
  modified: Date;
}

/** An object's bytes, and its size when the store knows it before they are read (for progress). */
export interface StoredBody extends AsyncIterable<Buffer> {
  size?: number;
}

/** Where archives live. Keys are `/`-separated and already validated. */
export interface Store {
  /** Where the store is, for messages; never holds credentials. */
  readonly location: string;
  /**
   * Its objects are files on this machine (a directory store): the blob layout reads its packs as
   * fast as it would read copies, so it keeps none in the local blob cache.
   */
  readonly local?: boolean;
  /** The object's bytes as a stream, or undefined when there is no such object. */
  get(key: string, signal?: AbortSignal): Promise<StoredBody | undefined>;
  /**
   * Bytes [start, end) of the object (blobs in a pack; fewer where it ends before), or undefined
   * when there is no such object. With `into` (at least end - start bytes) they are read into it
   * and the result is a view of it: a reader reuses its buffers; `filled` is told how many bytes of
   * it are in as they arrive, where the store streams them (a reader may use those before the read
   * ends). Optional: where a store lacks it, readers read the object from its start (see stores/range.ts).
   */
  getRange?(key: string, start: number, end: number, signal?: AbortSignal, into?: Buffer, filled?: (bytes: number) => void): Promise<Buffer | undefined>;
  /**
   * Writes the object so that readers see either the previous one or the whole new one.
   * `sizeHint`: about how many bytes the body has, when known, so that a large upload goes in fewer, larger parts.
   */
  put(key: string, body: Readable, signal?: AbortSignal, sizeHint?: number): Promise<{ bytes: number }>;
  /** Every object in the store whose key starts with `under` (default: all), in no particular order. */
  list(signal?: AbortSignal, under?: string): Promise<StoredObject[]>;
  /**
   * Why nothing can be found here beyond "never saved", if the store knows (a directory that does
   * not exist, as in a sandboxed build that was not given it): said with a miss.
   */
  whyEmpty?(): Promise<string | undefined>;
  /** Removes what writers that were killed left behind (temporary files); returns their keys. */
  removeStale?(signal?: AbortSignal): Promise<string[]>;
  /** Removes an archive and anything the store keeps beside it. */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /** Releases connections; the store is not used afterwards. */
  close(): void;
}
