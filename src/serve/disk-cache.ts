// The daemon's copy of objects on local disk, capped in size: least recently used go first.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** What the upstream store said of the object when it was cached: a change there means refetch. */
export interface CachedMeta {
  key: string;
  size: number;
  /** ISO 8601, as the upstream store listed it. */
  modified: string;
}

/** An object being written into the cache: nothing is visible until `commit`. */
export interface CacheWriter {
  write(chunk: Buffer): Promise<void>;
  /** The bytes written so far, readable again (for uploading what a client sent). */
  readonly path: string;
  commit(meta: CachedMeta): Promise<void>;
  abort(): Promise<void>;
}

export class DiskCache {
  readonly #dir: string;
  readonly #maxBytes: number;

  constructor(dir: string, maxBytes: number) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
  }

  async prepare(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    // Temporaries of a daemon that was killed.
    for (const name of await readdir(this.#dir)) if (name.includes('.tmp-')) await rm(join(this.#dir, name), { force: true });
  }

  #file(key: string): string {
    return join(this.#dir, createHash('sha256').update(key).digest('hex'));
  }

  async meta(key: string): Promise<CachedMeta | undefined> {
    try {
      const meta = JSON.parse(await readFile(`${this.#file(key)}.json`, 'utf8')) as CachedMeta;
      return meta.key === key ? meta : undefined;
    } catch {
      return undefined;
    }
  }

  /** The cached bytes (or bytes [start, end) of them), marked as just used; undefined when not cached. */
  async open(key: string, range?: [start: number, end: number]): Promise<ReadStream | undefined> {
    const file = this.#file(key);
    try {
      const now = new Date();
      await utimes(file, now, now);
      return createReadStream(file, { highWaterMark: 1 << 20, ...(range ? { start: range[0], end: range[1] - 1 } : {}) });
    } catch {
      return undefined;
    }
  }

  async drop(key: string): Promise<void> {
    const file = this.#file(key);
    await rm(`${file}.json`, { force: true });
    await rm(file, { force: true });
  }

  async writer(key: string): Promise<CacheWriter> {
    const file = this.#file(key);
    const path = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    const handle: FileHandle = await open(path, 'wx', 0o600);
    let closed = false;
    const close = async () => {
      if (!closed) await handle.close();
      closed = true;
    };
    return {
      path,
      write: async (chunk) => { await handle.write(chunk); },
      commit: async (meta) => {
        await close();
        await rm(`${file}.json`, { force: true });
        await rename(path, file);
        await writeFile(`${file}.json`, JSON.stringify(meta), { mode: 0o600 });
        await this.#evict(file);
      },
      abort: async () => {
        await close();
        await rm(path, { force: true });
      },
    };
  }

  /** Removes least recently used objects until the cache fits, never `keep`. */
  async #evict(keep: string): Promise<void> {
    const objects: { file: string; size: number; used: number }[] = [];
    for (const name of await readdir(this.#dir)) {
      if (name.includes('.')) continue;
      const info = await stat(join(this.#dir, name)).catch(() => undefined);
      if (info) objects.push({ file: join(this.#dir, name), size: info.size, used: info.mtimeMs });
    }
    let total = objects.reduce((sum, o) => sum + o.size, 0);
    for (const object of objects.sort((a, b) => a.used - b.used)) {
      if (total <= this.#maxBytes) break;
      if (object.file === keep) continue;
      await rm(`${object.file}.json`, { force: true });
      await rm(object.file, { force: true });
      total -= object.size;
    }
  }
}
