// The blob layout's save: see docs/design.md, "Blob layout".
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { formatBlobManifest, type BlobEntry, type BlobLocation, type EntryType } from '../core/blobs.js';
import { packKey } from '../core/key.js';
import { BLOCK_SIZE } from '../core/ustar.js';
import type { Store } from '../stores/index.js';
import { tarHeader } from '../tar-header.js';
import { keepUsable, recheckPacks } from './gc.js';
import { BLOB_CACHE_LIMIT, indexFile, keepBlob, KNOWN_FILE, padding, readKnown, remember, sha256, trimBlobCache } from './cache.js';

/**
 * The blobs this store is known to hold: those of the manifest restore read (in the state dir) and
 * of the last manifest this machine read or wrote (the local index), kept only where their pack is
 * still listed and not marked by prune (blobs/gc.ts), so a save never names a blob prune may delete.
 */
export async function knownBlobs(store: Store, stateDir: string, cacheDir: string | undefined, signal?: AbortSignal): Promise<Map<string, BlobLocation>> {
  const known = new Map<string, BlobLocation>();
  await readKnown(join(stateDir, KNOWN_FILE), known);
  if (cacheDir !== undefined) await readKnown(indexFile(cacheDir, store), known);
  return known.size === 0 ? known : keepUsable(store, known, signal);
}

export interface BlobSave {
  store: Store;
  key: string;
  /** The uncompressed tar the archive layout would have stored. */
  tar: AsyncIterable<Buffer>;
  known: ReadonlyMap<string, BlobLocation>;
  cacheDir: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Stores the tar in the blob layout: new blobs in one pack (a tar of blobs named by their hash,
 * uncompressed so that a blob is a plain byte range), then the manifest at `key`, last. Returns
 * the bytes written to the store. A failure before the manifest leaves the cache as it was.
 */
export async function saveBlobs(input: BlobSave): Promise<{ bytes: number; blobs: number }> {
  const entries: BlobEntry[] = [];
  const blobs = new Map<string, BlobLocation>();
  const pack = packKey(randomBytes(8).toString('hex'));
  let position = 0;
  let added = 0;
  const kept: Promise<void>[] = [];
  async function* packBody(): AsyncGenerator<Buffer> {
    const ready: Buffer[] = [];
    let failure: unknown;
    const parser = new Parser({ strict: true });
    parser.on('error', (error: unknown) => { failure ??= error; });
    parser.on('entry', (entry: ReadEntry) => {
      const type = entry.type as EntryType;
      const record: BlobEntry = {
        path: entry.path, type, mode: entry.mode ?? 0o644, size: entry.size ?? 0,
        ...(entry.mtime && type !== 'Directory' ? { mtime: Math.floor(entry.mtime.getTime() / 1000) } : {}),
        ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
      };
      entries.push(record);
      if (type !== 'File') {
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => {
        const data = Buffer.concat(chunks);
        const id = sha256(data);
        record.blob = id;
        const known = blobs.get(id) ?? input.known.get(id);
        if (known) {
          blobs.set(id, known);
          return;
        }
        ready.push(tarHeader({ path: id, type: 'File', mode: 0o644, size: data.length, mtime: 0 }), data, Buffer.alloc(padding(data.length)));
        blobs.set(id, { pack, offset: position + BLOCK_SIZE, size: data.length });
        position += BLOCK_SIZE + data.length + padding(data.length);
        added++;
        kept.push(keepBlob(input.cacheDir, id, data));
      });
    });
    for await (const chunk of input.tar) {
      parser.write(chunk);
      if (failure) throw failure;
      yield* ready.splice(0);
    }
    parser.end();
    if (failure) throw failure;
    yield* ready.splice(0);
    if (added > 0) yield Buffer.alloc(2 * BLOCK_SIZE);
  }
  const body = packBody();
  const first = await body.next();
  let bytes = 0;
  if (!first.done) {
    async function* whole() {
      yield first.value as Buffer;
      yield* body;
    }
    bytes += (await input.store.put(pack, Readable.from(whole()), input.signal)).bytes;
  }
  await Promise.all(kept);
  await recheckPacks(input.store, input.known, blobs, input.signal);
  const manifest = gzipSync(formatBlobManifest({ entries, blobs }));
  bytes += (await input.store.put(input.key, Readable.from([manifest]), input.signal)).bytes;
  if (input.cacheDir !== undefined) {
    await remember(indexFile(input.cacheDir, input.store), blobs);
    await trimBlobCache(input.cacheDir, BLOB_CACHE_LIMIT);
  }
  return { bytes, blobs: added };
}

