// The local blob cache (one per machine and user, `$XDG_CACHE_HOME/nix-build-cache/blobs`): blobs
// named by their hash, kept as their packs hold them (the content, or a zstd frame `<hash>.zst`),
// and per store an index of the blobs it holds, so that a save names blobs the store has instead of
// uploading them and a restore reads what is here instead of fetching it.
import { createHash, randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { copyFile, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blobLocation, blobPath, cachedBlobName, locationFields, SHA256_HEX, type BlobLocation } from '../core/blobs.js';
import type { Store } from '../stores/index.js';

/** The default local blob cache: $XDG_CACHE_HOME/nix-build-cache/blobs. */
export function defaultBlobCache(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nix-build-cache', 'blobs');
}

/** The local blob cache is trimmed to this many bytes, oldest blobs first. */
const BLOB_CACHE_LIMIT = 4 * 2 ** 30;
/** What restore records in the state dir: the blobs the store had, for the next save. */
export const KNOWN_FILE = 'blobs.json';

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Writes a blob's content into the local cache, from memory or (`file`) a copy of a file holding it
 * (best effort: a cache that cannot be written is only slower).
 */
export async function keepBlob(dir: string | undefined, id: string, content: Buffer | { file: string }): Promise<void> {
  if (dir === undefined) return;
  const path = blobPath(dir, id);
  const temporary = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(join(dir, id.slice(0, 2)), { recursive: true });
    if (Buffer.isBuffer(content)) await writeFile(temporary, content);
    else await copyFile(content.file, temporary);
    await rename(temporary, path);
  } catch {
    await unlink(temporary).catch(() => {});
  }
}

export const indexFile = (dir: string, store: Store) => join(dir, 'index', `${createHash('sha256').update(store.location).digest('hex').slice(0, 16)}.json`);

function toJson(blobs: ReadonlyMap<string, BlobLocation>): string {
  return JSON.stringify(Object.fromEntries([...blobs].map(([id, l]) => [id, [l.pack, ...locationFields(l)]])));
}

export async function readKnown(file: string, into: Map<string, BlobLocation>): Promise<void> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    for (const [id, row] of Object.entries(value)) {
      const location = SHA256_HEX.test(id) && Array.isArray(row) ? blobLocation(row[0], row[1], row[2], row[3], row[4]) : undefined;
      if (location) into.set(id, location);
    }
  } catch { /* none known */ }
}

/** Records `blobs` (where each lies in the store) in each of `files`: best effort. */
export async function remember(files: readonly string[], blobs: ReadonlyMap<string, BlobLocation>): Promise<void> {
  const json = toJson(blobs);
  await Promise.all(files.map(async (file) => {
    try {
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, json);
    } catch { /* best effort */ }
  }));
}

/**
 * Records `blobs` in each of `files` as remember does, as temporaries begun after a turn of the
 * event loop (making the JSON takes the main thread a few ms per thousand blobs): `keep` puts them
 * in place once the blobs are known good, `drop` removes them.
 */
export function rememberWhenChecked(files: readonly string[], blobs: ReadonlyMap<string, BlobLocation>): { keep(): Promise<void>; drop(): Promise<void> } {
  const temporary = (file: string) => `${file}.tmp-${process.pid}`;
  const written = new Promise((resolve) => setImmediate(resolve)).then(() => remember(files.map(temporary), blobs));
  const finish = (step: (file: string) => Promise<void>) => async () => {
    await written;
    await Promise.all(files.map((file) => step(file).catch(() => {})));
  };
  return { keep: finish((file) => rename(temporary(file), file)), drop: finish((file) => unlink(temporary(file))) };
}

/** Whether the local blob cache can be written; a sandboxed build has none. */
export async function usable(dir: string | undefined): Promise<boolean> {
  if (dir === undefined) return false;
  try {
    await mkdir(dir, { recursive: true });
    const probe = join(dir, `.probe-${randomBytes(4).toString('hex')}`);
    await writeFile(probe, '');
    await unlink(probe);
    return true;
  } catch {
    return false;
  }
}

const ADDED_FILE = 'added';

/**
 * Notes `bytes` newly written to the cache, and trims it (see trimBlobCache) once what was added
 * since the last trim passes an eighth of `limit`: a trim reads the size of every blob, too slow
 * for every save. Concurrent writers may lose each other's notes: the cache then outgrows the
 * limit by a little more before a trim. Best effort.
 */
export async function noteAdded(dir: string, bytes: number, keep: ReadonlySet<string> = new Set(), limit = BLOB_CACHE_LIMIT): Promise<void> {
  const ledger = join(dir, ADDED_FILE);
  try {
    const added = (Number(await readFile(ledger, 'utf8').catch(() => '0')) || 0) + bytes;
    if (added < limit / 8) {
      if (bytes > 0) await writeFile(ledger, String(added));
      return;
    }
    await writeFile(ledger, '0');
    await trimBlobCache(dir, limit, keep);
  } catch { /* best effort */ }
}

/**
 * Trims the local blob cache to `limit` bytes, removing the oldest written blobs first (never those
 * in `keep`, the ones a restore is about to read). Best effort.
 */
async function trimBlobCache(dir: string, limit: number, keep: ReadonlySet<string> = new Set()): Promise<void> {
  try {
    const blobs: { path: string; size: number; mtimeMs: number }[] = [];
    for (const sub of await readdir(dir)) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      for (const name of await readdir(join(dir, sub))) {
        const info = await stat(join(dir, sub, name)).catch(() => undefined);
        if (info) blobs.push({ path: join(dir, sub, name), size: info.size, mtimeMs: keep.has(cachedBlobName(name)?.id ?? '') ? Infinity : info.mtimeMs });
      }
    }
    let total = blobs.reduce((sum, b) => sum + b.size, 0);
    for (const blob of blobs.sort((a, b) => a.mtimeMs - b.mtimeMs)) {
      if (total <= limit || blob.mtimeMs === Infinity) break;
      await unlink(blob.path).catch(() => {});
      total -= blob.size;
    }
  } catch { /* best effort */ }
}
