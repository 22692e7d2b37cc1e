// The blob layout's restore: see docs/design.md, "Blob layout".
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseBlobManifest, type BlobLocation, type BlobManifest } from '../core/blobs.js';
import { bytePathFromText, type BytePath } from '../core/paths.js';
import { BLOCK_SIZE } from '../core/ustar.js';
import { ArchiveError } from '../errors.js';
import type { Store, StoredBody } from '../stores/index.js';
import { tarHeader } from '../tar-header.js';
import {
  blobPath, EMPTY_BLOB, indexFile, keepBlob, KNOWN_FILE, noteAdded, padding, remember, sha256, usable,
} from './cache.js';

/** A manifest larger than this (compressed) is refused: it is read whole. */
const MANIFEST_LIMIT = 64 << 20;
/** Ranged reads of a pack: blobs closer than GAP are read in one request of at most RUN bytes. */
const GAP = 256 << 10;
const RUN = 8 << 20;
const FETCHES = 4;

/** The manifest at `key`, or undefined when there is none; ArchiveError when it is damaged. */
export async function readManifest(store: Store, key: string, signal?: AbortSignal): Promise<BlobManifest | undefined> {
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

/**
 * The cache at `key` in the blob layout as the tar it was saved from, or undefined when there is
 * none. Blobs missing from the local cache are fetched first, by ranges of their packs, and each is
 * checked against its hash: one that does not match makes the cache unusable (ArchiveError).
 */
export async function blobArchive(input: BlobRestore): Promise<(StoredBody & { blobs: ReadonlyMap<BytePath, string> }) | undefined> {
  const { store, signal } = input;
  const manifest = await readManifest(store, input.key, signal);
  if (!manifest) return undefined;
  await remember(join(input.stateDir, KNOWN_FILE), manifest.blobs);
  const local = await usable(input.cacheDir);
  // Without a local cache, fetched blobs wait in the state dir until they are unpacked.
  const dir = local ? input.cacheDir! : join(input.stateDir, `blobs-${randomBytes(4).toString('hex')}`);
  const wanted = new Map<string, BlobLocation>();
  for (const entry of manifest.entries) if (entry.blob && entry.blob !== EMPTY_BLOB) wanted.set(entry.blob, manifest.blobs.get(entry.blob)!);
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
    await noteAdded(dir, missing.reduce((sum, [, l]) => sum + l.size, 0), new Set(wanted.keys()));
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
  const blobs = new Map(manifest.entries.flatMap((e) => (e.blob ? [[bytePathFromText(e.path), e.blob] as const] : [])));
  return Object.assign(tar(), { size: bytes, blobs });
}

