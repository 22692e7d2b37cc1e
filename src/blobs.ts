// The blob layout (opt-in, --layout blobs): a save splits the tar it would have uploaded into the
// file contents (blobs, named by SHA-256) and a manifest of the entries; blobs the store already
// has are not uploaded, the new ones go into one pack per save, and the manifest goes last to the
// cache's key. A restore builds the same tar back from the manifest and blobs (local ones first,
// the rest by byte ranges of their packs) and unpacks it as any archive. See docs/design.md.
import { createHash, randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import {
  formatBlobManifest, parseBlobManifest, SHA256_HEX, type BlobEntry, type BlobLocation, type BlobManifest, type EntryType,
} from './core/blobs.js';
import { blobsKey, isPackKey, objectKey, packKey, PACKS_PREFIX, type KeyInputs } from './core/key.js';
import { BLOCK_SIZE } from './core/ustar.js';
import { ArchiveError } from './errors.js';
import type { Layout } from './options.js';
import type { Store, StoredBody } from './stores/index.js';
import { tarHeader } from './tar-header.js';

/** The key of a cache in either layout. */
export function cacheKey(name: string, inputs: KeyInputs & { layout: Layout }): string {
  return inputs.layout === 'blobs' ? blobsKey(name, inputs) : objectKey(name, inputs);
}

/** The default local blob cache: $XDG_CACHE_HOME/nix-build-cache/blobs. */
export function defaultBlobCache(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nix-build-cache', 'blobs');
}

/** The local blob cache is trimmed to this many bytes, oldest blobs first. */
export const BLOB_CACHE_LIMIT = 4 * 2 ** 30;
/** A manifest larger than this (compressed) is refused: it is read whole. */
const MANIFEST_LIMIT = 64 << 20;
/** Ranged reads of a pack: blobs closer than GAP are read in one request of at most RUN bytes. */
const GAP = 256 << 10;
const RUN = 8 << 20;
const FETCHES = 4;
const EMPTY = createHash('sha256').digest('hex');
/** What restore records in the state dir: the blobs the store had, for the next save. */
const KNOWN_FILE = 'blobs.json';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const blobPath = (dir: string, id: string) => join(dir, id.slice(0, 2), id);
const padding = (size: number) => (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;

/** Writes a blob into the local cache (best effort: a cache that cannot be written is only slower). */
async function keepBlob(dir: string | undefined, id: string, data: Buffer): Promise<void> {
  if (dir === undefined) return;
  const path = blobPath(dir, id);
  const temporary = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(join(dir, id.slice(0, 2)), { recursive: true });
    await writeFile(temporary, data);
    await rename(temporary, path);
  } catch {
    await unlink(temporary).catch(() => {});
  }
}

const indexFile = (dir: string, store: Store) => join(dir, 'index', `${createHash('sha256').update(store.location).digest('hex').slice(0, 16)}.json`);

function toJson(blobs: ReadonlyMap<string, BlobLocation>): string {
  return JSON.stringify(Object.fromEntries([...blobs].map(([id, l]) => [id, [l.pack, l.offset, l.size]])));
}

async function readKnown(file: string, into: Map<string, BlobLocation>): Promise<void> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as Record<string, [string, number, number]>;
    for (const [id, [pack, offset, size]] of Object.entries(value)) {
      if (SHA256_HEX.test(id) && isPackKey(pack) && Number.isSafeInteger(offset) && Number.isSafeInteger(size)) into.set(id, { pack, offset, size });
    }
  } catch { /* none known */ }
}

/**
 * The blobs this store is known to hold: those of the manifest restore read (in the state dir) and
 * of the last manifest this machine read or wrote (the local index), kept only where their pack is
 * still listed, so a save never names a blob of a pack that is gone.
 */
export async function knownBlobs(store: Store, stateDir: string, cacheDir: string | undefined, signal?: AbortSignal): Promise<Map<string, BlobLocation>> {
  const known = new Map<string, BlobLocation>();
  await readKnown(join(stateDir, KNOWN_FILE), known);
  if (cacheDir !== undefined) await readKnown(indexFile(cacheDir, store), known);
  if (known.size === 0) return known;
  const packs = new Set((await store.list(signal, PACKS_PREFIX)).map((object) => object.key));
  for (const [id, location] of known) if (!packs.has(location.pack)) known.delete(id);
  return known;
}

async function remember(file: string, blobs: ReadonlyMap<string, BlobLocation>): Promise<void> {
  try {
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, toJson(blobs));
  } catch { /* best effort */ }
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
  const manifest = gzipSync(formatBlobManifest({ entries, blobs }));
  bytes += (await input.store.put(input.key, Readable.from([manifest]), input.signal)).bytes;
  if (input.cacheDir !== undefined) {
    await remember(indexFile(input.cacheDir, input.store), blobs);
    await trimBlobCache(input.cacheDir, BLOB_CACHE_LIMIT);
  }
  return { bytes, blobs: added };
}

async function readManifest(store: Store, key: string, signal?: AbortSignal): Promise<BlobManifest | undefined> {
  const body = await store.get(key, signal);
  if (!body) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MANIFEST_LIMIT) throw new ArchiveError(`the blob manifest is larger than ${MANIFEST_LIMIT} bytes`, key);
    chunks.push(chunk);
  }
  let text: string;
  try {
    text = gunzipSync(Buffer.concat(chunks)).toString('utf8');
  } catch {
    throw new ArchiveError('the blob manifest is damaged', key);
  }
  const parsed = parseBlobManifest(text);
  if ('problem' in parsed) throw new ArchiveError(parsed.problem, key);
  return parsed;
}

/** A range of a pack holding one or more wanted blobs. */
interface Run {
  pack: string;
  start: number;
  end: number;
  blobs: [id: string, location: BlobLocation][];
}

function runsOf(missing: [string, BlobLocation][]): Run[] {
  const sorted = [...missing].sort(([, a], [, b]) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset));
  const runs: Run[] = [];
  for (const [id, l] of sorted) {
    const last = runs.at(-1);
    if (last && last.pack === l.pack && l.offset - last.end <= GAP && l.offset + l.size - last.start <= RUN) {
      last.end = Math.max(last.end, l.offset + l.size);
      last.blobs.push([id, l]);
    } else runs.push({ pack: l.pack, start: l.offset, end: l.offset + l.size, blobs: [[id, l]] });
  }
  return runs;
}

/** Bytes [start, end) of an object, by a ranged read where the store has one, else read from the start. */
async function readRange(store: Store, key: string, start: number, end: number, signal?: AbortSignal): Promise<Buffer | undefined> {
  if (store.getRange) return store.getRange(key, start, end, signal);
  const body = await store.get(key, signal);
  if (!body) return undefined;
  const wanted = Buffer.alloc(end - start);
  let at = 0;
  for await (const chunk of body) {
    const from = Math.max(start - at, 0);
    const to = Math.min(end - at, chunk.length);
    if (to > from) chunk.copy(wanted, at + from - start, from, to);
    at += chunk.length;
    if (at >= end) break;
  }
  return at >= end ? wanted : undefined;
}

export interface BlobRestore {
  store: Store;
  key: string;
  /** Where restore keeps its state: what this manifest's blobs are goes there, for save. */
  stateDir: string;
  cacheDir: string | undefined;
  signal?: AbortSignal | undefined;
}

/** Whether the local blob cache can be written; a sandboxed build has none. */
async function usable(dir: string | undefined): Promise<boolean> {
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

/**
 * The cache at `key` in the blob layout as the tar it was saved from, or undefined when there is
 * none. Blobs missing from the local cache are fetched first, by ranges of their packs, and each is
 * checked against its hash: one that does not match makes the cache unusable (ArchiveError).
 */
export async function blobArchive(input: BlobRestore): Promise<StoredBody | undefined> {
  const { store, signal } = input;
  const manifest = await readManifest(store, input.key, signal);
  if (!manifest) return undefined;
  await remember(join(input.stateDir, KNOWN_FILE), manifest.blobs);
  const local = await usable(input.cacheDir);
  // Without a local cache, fetched blobs wait in the state dir until they are unpacked.
  const dir = local ? input.cacheDir! : join(input.stateDir, `blobs-${randomBytes(4).toString('hex')}`);
  const wanted = new Map<string, BlobLocation>();
  for (const entry of manifest.entries) if (entry.blob && entry.blob !== EMPTY) wanted.set(entry.blob, manifest.blobs.get(entry.blob)!);
  const missing: [string, BlobLocation][] = [];
  for (const [id, location] of wanted) {
    const size = (await stat(blobPath(dir, id)).catch(() => undefined))?.size;
    if (size !== location.size) missing.push([id, location]);
  }
  try {
    const runs = runsOf(missing);
    const fetchRun = async (run: Run) => {
      const data = await readRange(store, run.pack, run.start, run.end, signal);
      if (!data || data.length !== run.end - run.start) throw new ArchiveError(`the pack ${run.pack} is missing or shorter than its blobs`, input.key);
      for (const [id, l] of run.blobs) {
        const blob = data.subarray(l.offset - run.start, l.offset - run.start + l.size);
        if (sha256(blob) !== id) throw new ArchiveError(`blob ${id} in ${run.pack} does not match its hash`, input.key);
        await mkdir(join(dir, id.slice(0, 2)), { recursive: true });
        await keepBlob(dir, id, blob);
      }
    };
    for (let next = 0; next < runs.length;) await Promise.all(runs.slice(next, next += FETCHES).map(fetchRun));
  } catch (error) {
    if (!local) await rm(dir, { recursive: true, force: true });
    throw error;
  }
  if (local) {
    await remember(indexFile(dir, store), manifest.blobs);
    await trimBlobCache(dir, BLOB_CACHE_LIMIT, new Set(wanted.keys()));
  }
  const bytes = manifest.entries.reduce((sum, e) => sum + e.size, 0);
  async function* tar(): AsyncGenerator<Buffer> {
    try {
      for (const entry of manifest!.entries) {
        yield tarHeader(entry);
        if (!entry.blob || entry.size === 0) continue;
        const data = await readFile(blobPath(dir, entry.blob));
        if (sha256(data) !== entry.blob) {
          // A local blob damaged since: gone from the cache, the next restore fetches it again.
          await unlink(blobPath(dir, entry.blob)).catch(() => {});
          throw new ArchiveError(`the local blob ${entry.blob} does not match its hash`, entry.path);
        }
        yield data;
        yield Buffer.alloc(padding(data.length));
      }
      yield Buffer.alloc(2 * BLOCK_SIZE);
    } finally {
      if (!local) await rm(dir, { recursive: true, force: true });
    }
  }
  return Object.assign(tar(), { size: bytes });
}

/**
 * Trims the local blob cache to `limit` bytes, removing the oldest written blobs first (never those
 * in `keep`, the ones a restore is about to read). Best effort.
 */
export async function trimBlobCache(dir: string, limit: number, keep: ReadonlySet<string> = new Set()): Promise<void> {
  try {
    const blobs: { path: string; size: number; mtimeMs: number }[] = [];
    for (const sub of await readdir(dir)) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      for (const name of await readdir(join(dir, sub))) {
        const info = await stat(join(dir, sub, name)).catch(() => undefined);
        if (info) blobs.push({ path: join(dir, sub, name), size: info.size, mtimeMs: keep.has(name) ? Infinity : info.mtimeMs });
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
