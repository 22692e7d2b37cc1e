import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { describeError, StoreError } from '../errors.js';
import type { Store, StoredObject } from './store.js';

/** A directory of archives: the default store, for one machine or a shared file system. */
export class FileStore implements Store {
  readonly location: string;
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = resolve(dir);
    this.location = `file://${this.#dir}`;
  }

  #path(key: string): string {
    const path = resolve(this.#dir, key);
    if (!path.startsWith(this.#dir + sep)) throw new StoreError('resolve', key, 'key leaves the store directory');
    return path;
  }

  async get(key: string): Promise<AsyncIterable<Buffer> | undefined> {
    let handle;
    try {
      handle = await open(this.#path(key), 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError('read', join(this.location, key), describeError(error), { cause: error });
    }
    return handle.createReadStream({ highWaterMark: 1 << 20 });
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }> {
    const path = this.#path(key);
    const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await mkdir(dirname(path), { recursive: true });
      const handle = await open(temporary, 'wx', 0o644);
      let bytes = 0;
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          signal?.throwIfAborted();
          await handle.write(chunk);
          bytes += chunk.length;
        }
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(temporary, path);
      return { bytes };
    } catch (error) {
      await unlink(temporary).catch(() => {});
      if (error instanceof StoreError || (error as Error).name === 'AbortError') throw error;
      throw new StoreError('write', `${this.location}/${key}`, describeError(error), { cause: error });
    }
  }

  async list(_signal?: AbortSignal, under = ''): Promise<StoredObject[]> {
    // Keys are paths: list the deepest directory that holds every key starting with `under`.
    const base = under.includes('/') ? under.slice(0, under.lastIndexOf('/') + 1) : '';
    let names: string[];
    try {
      names = (await readdir(join(this.#dir, base), { recursive: true })).map((name) => `${base}${name}`).filter((key) => key.startsWith(under));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError('list', this.location, describeError(error), { cause: error });
    }
    const objects: StoredObject[] = [];
    for (const key of names.sort()) {
      const info = await stat(join(this.#dir, key)).catch(() => undefined);
      if (info?.isFile()) objects.push({ key, size: info.size, modified: info.mtime });
    }
    return objects;
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.#path(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new StoreError('delete', `${this.location}/${key}`, describeError(error), { cause: error });
      }
    }
  }

  close(): void {}
}
