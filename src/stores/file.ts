import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { describeError, NbcError, StoreError } from '../core/errors.js';
import type { Store, StoredBody, StoredObject } from './store.js';

// A store directory that is group-writable (the set-up for many build users: `install -d -m 2775
// -o root -g nixbld DIR`) is shared: what a save creates there is group-writable too, whatever the
// umask (022 in Nix builds), so the next build user can replace it.
const SHARED_DIR_MODE = 0o2775;
const SHARED_FILE_MODE = 0o664;

const WRITE_HINT = 'the store directory must exist and be writable by the build users '
  + '(one-time set-up: install -d -m 2775 -o root -g nixbld DIR, and for sandboxed builds extra-sandbox-paths = DIR?)';

// A temporary is `<key>.tmp-<pid>-<writer>-<random>`, where <writer> names this host, boot and pid
// namespace: only there does a pid say whether its writer still runs (in a Nix sandbox every build
// has pid namespace and hostname of its own). A later save or prune removes temporaries whose writer
// is proven dead, and any not written to for STALE_MS (a live writer writes every few seconds).
const STALE_MS = 60 * 60 * 1000;
const TEMPORARY = /\.tmp-(\d+)-(?:([0-9a-f]{8})-)?[0-9a-f]{8}$/;

function readOr(read: () => string): string {
  try {
    return read();
  } catch {
    return '';
  }
}

let writerId: string | undefined;
function thisWriter(): string {
  writerId ??= createHash('sha256').update([
    hostname(), readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()), readOr(() => readlinkSync('/proc/self/ns/pid')),
  ].join('\0')).digest('hex').slice(0, 8);
  return writerId;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Whether a temporary with this name, last written at `modifiedMs`, is a dead writer's leftover. */
function isStale(name: string, modifiedMs: number, now: number): boolean {
  const match = TEMPORARY.exec(name);
  if (!match) return false;
  if (match[2] === thisWriter() && !isRunning(Number(match[1]))) return true;
  return now - modifiedMs > STALE_MS;
}

export interface FileStoreOptions {
  /**
   * Create the store directory on the first save (default). In a Nix build it must exist already:
   * in the sandbox, a directory not in extra-sandbox-paths would be created in the build's private
   * file system and vanish with it, a save that "succeeds" into nothing.
   */
  createDir?: boolean;
}

/** A directory of archives: the default store, for one machine or a shared file system. */
export class FileStore implements Store {
  readonly location: string;
  readonly local = true;
  readonly #dir: string;
  readonly #createDir: boolean;
  #cleaning: Promise<string[]> | undefined;

  constructor(dir: string, options: FileStoreOptions = {}) {
    this.#dir = resolve(dir);
    this.#createDir = options.createDir ?? true;
    this.location = `file://${this.#dir}`;
  }

  #path(key: string): string {
    const path = resolve(this.#dir, key);
    if (!path.startsWith(this.#dir + sep)) throw new StoreError('resolve', key, 'key leaves the store directory');
    return path;
  }

  /** The object opened for reading, or undefined when there is none. */
  async #open(key: string): Promise<FileHandle | undefined> {
    try {
      return await open(this.#path(key), 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError('read', join(this.location, key), describeError(error), { cause: error });
    }
  }

  async get(key: string): Promise<StoredBody | undefined> {
    const handle = await this.#open(key);
    if (!handle) return undefined;
    const { size } = await handle.stat().catch(async (error: unknown) => {
      await handle.close();
      throw new StoreError('read', join(this.location, key), describeError(error), { cause: error });
    });
    return Object.assign(handle.createReadStream({ highWaterMark: 1 << 20 }), { size });
  }

  async getRange(key: string, start: number, end: number, _signal?: AbortSignal, into?: Buffer): Promise<Buffer | undefined> {
    const handle = await this.#open(key);
    if (!handle) return undefined;
    try {
      // Not zeroed: only what was read is returned.
      const data = into ?? Buffer.allocUnsafeSlow(end - start);
      const { bytesRead } = await handle.read(data, 0, end - start, start);
      return data.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  /** Creates the directories of `path` below the store; in a shared store, group-writable and setgid. */
  async #makeParents(path: string, shared: boolean): Promise<void> {
    if (!shared) {
      await mkdir(dirname(path), { recursive: true });
      return;
    }
    let dir = this.#dir;
    for (const part of relative(this.#dir, dirname(path)).split(sep).filter(Boolean)) {
      dir = join(dir, part);
      try {
        await mkdir(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        continue;
      }
      // The Nix sandbox refuses any chmod that sets the setgid bit: then group-writable is enough
      // (the group came from the setgid parent, and a build user's own group is nixbld).
      await chmod(dir, SHARED_DIR_MODE).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPERM') throw error;
        return chmod(dir, SHARED_DIR_MODE & 0o777);
      });
    }
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }> {
    const path = this.#path(key);
    const temporary = `${path}.tmp-${process.pid}-${thisWriter()}-${randomBytes(4).toString('hex')}`;
    // What killed writers left is looked for once per store object (a listing of the whole store),
    // while this put writes.
    this.#cleaning ??= this.removeStale();
    try {
      const root = await stat(this.#dir).catch(() => undefined);
      if (!root && !this.#createDir) {
        throw new StoreError('write', this.location, `the store directory ${this.#dir} does not exist in this build`, { hint: WRITE_HINT });
      }
      const shared = root !== undefined && (root.mode & 0o020) !== 0;
      await this.#makeParents(path, shared);
      const handle = await open(temporary, 'wx', 0o644);
      if (shared) await handle.chmod(SHARED_FILE_MODE);
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
      await this.#cleaning;
      return { bytes };
    } catch (error) {
      await unlink(temporary).catch(() => {});
      // The body's own errors (what was being archived) are not the store's.
      if (error instanceof NbcError || (error as Error).name === 'AbortError') throw error;
      const denied = ['EACCES', 'EPERM', 'EROFS'].includes((error as NodeJS.ErrnoException).code ?? '');
      throw new StoreError('write', `${this.location}/${key}`, describeError(error), { cause: error, ...(denied ? { hint: WRITE_HINT } : {}) });
    }
  }

  /**
   * Removes the temporaries that killed writers left anywhere in the store; returns their keys.
   * Never throws: a leftover that cannot be removed now is removed by a later save.
   */
  async removeStale(): Promise<string[]> {
    const removed: string[] = [];
    let names: string[];
    try {
      names = (await readdir(this.#dir, { recursive: true })).filter((name) => TEMPORARY.test(name));
    } catch {
      return removed;
    }
    const now = Date.now();
    for (const key of names) {
      const path = join(this.#dir, key);
      const info = await lstat(path).catch(() => undefined);
      if (!info?.isFile() || !isStale(key, info.mtimeMs, now)) continue;
      if (await unlink(path).then(() => true, () => false)) removed.push(key);
    }
    return removed;
  }

  async whyEmpty(): Promise<string | undefined> {
    const root = await stat(this.#dir).catch(() => undefined);
    return root?.isDirectory() ? undefined : `the store directory ${this.#dir} does not exist (in a sandboxed build: is it in extra-sandbox-paths?)`;
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
