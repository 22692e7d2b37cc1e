// The blob layout's save: see docs/design.md, "Blob layout".
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { END_OF_ARCHIVE, packedChunks, tarFile, type PackEnd, type PackEntry, type PackInput } from '../archive.js';
import { formatBlobManifest, type BlobEntry, type BlobLocation } from '../core/blobs.js';
import { packKey } from '../core/key.js';
import { textFromBytePath, type BytePath } from '../core/paths.js';
import { BLOCK_SIZE, portableMode, tarPadding } from '../core/ustar.js';
import { WorkerPool } from '../pool.js';
import type { Store } from '../stores/index.js';
import { keepUsable, recheckPacks } from './gc.js';
import { isUnchanged, type UnchangedFile } from './unchanged.js';
import { indexFile, keepBlob, KNOWN_FILE, noteAdded, readKnown, remember, sha256, usable } from './cache.js';

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
  /** What to pack, as for an archive (the pack task reads the tree). */
  pack: PackInput;
  known: ReadonlyMap<string, BlobLocation>;
  /** What the restore of this build left in place (blobs/unchanged.ts): files found as they were are not read. */
  unchanged: ReadonlyMap<BytePath, UnchangedFile>;
  /** The artifacts' lstat, taken after they were listed. */
  stats: ReadonlyMap<BytePath, Stats>;
  cacheDir: string | undefined;
  /** Threads the save may use: a big one is packed on two when it may (see SPLIT_BYTES). */
  threads: number;
  /** Sees the pack's bytes on their way to the store (progress). */
  through?: (chunks: AsyncIterable<Buffer>) => AsyncIterable<Buffer>;
  signal?: AbortSignal | undefined;
}

export interface BlobSaved {
  /** Bytes written to the store: the pack and the manifest. */
  bytes: number;
  /** New blobs, in the pack. */
  blobs: number;
  /** Files found as restore left them, not read. */
  unread: number;
}

/** About how big a pack of these files would be, at most (for the upload's part size, see Store.put). */
function packSize(stats: readonly (Stats | undefined)[]): number {
  let bytes = 0;
  for (const stat of stats) if (stat?.isFile()) bytes += BLOCK_SIZE + stat.size + tarPadding(stat.size);
  return bytes;
}

/**
 * Past this many bytes to read, the files go to two pack tasks (reading, hashing and compressing
 * cost about 5 ns a byte), each writing its own pack, uploaded at the same time: the second on a
 * thread of its own, started then (a pool of two would slow every small save by its start-up).
 */
const SPLIT_BYTES = 64 << 20;

/**
 * Up to this many bytes to read, the pack is made on the main thread (while packing it, the thread
 * reads nothing else): a save after a small edit then starts no thread.
 */
const HERE_BYTES = 4 << 20;

/** The entries at `rest` (indexes of the listing) as one or two runs of it, about equal in bytes. */
function split(rest: readonly number[], sizes: readonly number[], total: number, threads: number): number[][] {
  if (threads < 2 || total < SPLIT_BYTES) return [[...rest]];
  let at = 0;
  for (let bytes = 0; bytes < total / 2;) bytes += sizes[at++]!;
  return [rest.slice(0, at), rest.slice(at)];
}

/**
 * The pack tasks' ends as one, as if one task had packed `rest` (the parts, runs of it in order,
 * concatenated), and where each blob they packed lies (a blob packed twice: the first).
 */
function joined(ends: readonly PackEnd[], parts: readonly (readonly number[])[], packs: readonly string[]): { end: PackEnd; blobs: Map<string, BlobLocation> } {
  const blobs = new Map<string, BlobLocation>();
  const end: PackEnd = { end: { files: 0, dirs: 0, bytes: 0 }, digests: [], rooted: [], skipped: [], packed: { entries: [], indexes: [], blobs: [], bytes: 0 } };
  let before = 0;
  ends.forEach(({ end: counts, digests, rooted, skipped, packed }, k) => {
    end.end.files += counts.files;
    end.end.dirs += counts.dirs;
    end.end.bytes += counts.bytes;
    end.digests.push(...digests);
    end.rooted.push(...rooted);
    end.skipped.push(...skipped);
    end.packed!.entries.push(...packed!.entries);
    end.packed!.indexes.push(...packed!.indexes.map((index) => index + before));
    for (const [id, offset, size, stored, frameHash] of packed!.blobs) {
      if (!blobs.has(id)) blobs.set(id, { pack: packs[k]!, offset, size, ...(stored === undefined ? {} : { stored }), ...(frameHash === undefined ? {} : { frameHash }) });
    }
    before += parts[k]!.length;
  });
  return { end, blobs };
}

/** An entry decided without the pack task: a directory, or a file found as restore left it. */
interface Settled {
  entry: BlobEntry;
  md5?: string;
  rooted?: boolean;
}

/**
 * The entries the main thread can write from the lstat it took: directories, and files found as
 * restore left them whose blob the store still holds (a file whose blob it lost is read and packed
 * again). The pack task gets the rest: in a save after a small edit, only what changed.
 */
function settle(input: BlobSave): (Settled | undefined)[] {
  return input.pack.entries.map(({ path, kind }) => {
    const stat = input.stats.get(path);
    if (kind === 'dir' && stat?.isDirectory()) {
      return { entry: { path: `${textFromBytePath(path)}/`, type: 'Directory', mode: portableMode(stat.mode, true), size: 0 } };
    }
    const was = input.unchanged.get(path);
    if (kind !== 'file' || !isUnchanged(was, stat) || !input.known.has(was[4])) return undefined;
    const [, size, mtimeMs, , blob, md5, rooted] = was;
    return { entry: { path: textFromBytePath(path), type: 'File', mode: portableMode(stat!.mode, false), mtime: Math.floor(mtimeMs / 1000), size, blob }, md5, rooted };
  });
}

/**
 * The manifest's entries, the MD5 of each file and the files that mention the root, with the
 * counts: those the main thread settled and those the pack task (given the entries at `rest`)
 * packed, back in the listing's order. Entries the task left out are left out.
 */
function inListingOrder(listed: readonly PackEntry[], settled: readonly (Settled | undefined)[], rest: readonly number[], task: PackEnd) {
  const packed = task.packed!;
  const fromTask = new Map(packed.indexes.map((taskIndex, k) => [rest[taskIndex]!, packed.entries[k]!]));
  const taskDigests = new Map(task.digests);
  const taskRooted = new Set(task.rooted);
  const entries: BlobEntry[] = [];
  const digests = new Map<BytePath, string>();
  const rooted: BytePath[] = [];
  const counts = { ...task.end };
  listed.forEach(({ path }, index) => {
    const mine = settled[index];
    const entry = mine?.entry ?? fromTask.get(index);
    if (!entry) return;
    entries.push(entry);
    const md5 = mine ? mine.md5 : taskDigests.get(path);
    if (md5 !== undefined) digests.set(path, md5);
    if (mine ? mine.rooted : taskRooted.has(path)) rooted.push(path);
    if (mine?.entry.type === 'Directory') counts.dirs++;
    else if (mine) {
      counts.files++;
      counts.bytes += entry.size;
    }
  });
  return { entries, digests, rooted, counts };
}

/**
 * Saves in the blob layout: the pack task reads what changed and writes the new blobs into a pack
 * (a tar of blobs named by their hash, each compressed alone so that a blob is a byte range; two
 * packs on two threads for a big save, see SPLIT_BYTES), the meta files follow as blobs in the
 * last, then the manifest goes to `key`, last. A failure before the manifest leaves the cache as it was.
 */
export async function saveBlobs(input: BlobSave): Promise<BlobSaved> {
  const cacheDir = await usable(input.cacheDir) ? input.cacheDir : undefined;
  // A directory store's packs are on this machine already (see Store.local).
  const copies = input.store.local ? undefined : cacheDir;
  const kept: Promise<void>[] = [];
  const settled = settle(input);
  const rest = input.pack.entries.flatMap((_, index) => (settled[index] ? [] : [index]));
  const sizes = rest.map((index) => input.stats.get(input.pack.entries[index]!.path)?.size ?? 0);
  const total = sizes.reduce((sum, size) => sum + size, 0);
  const parts = split(rest, sizes, total, input.threads);
  const here = total <= HERE_BYTES && !input.pack.pool.started;
  const pools = parts.map((_, k) => (k === 0 ? input.pack.pool : new WorkerPool(1)));
  const packs = parts.map(() => packKey(randomBytes(8).toString('hex')));
  const ends: PackEnd[] = [];
  // The meta files wait for every pack task; a failed upload ends the others.
  const failed = new AbortController();
  const signal = input.signal ? AbortSignal.any([input.signal, failed.signal]) : failed.signal;
  let allEnded!: () => void;
  const ended = new Promise<void>((resolve, reject) => {
    allEnded = resolve;
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
  ended.catch(() => {});
  let manifest: { entries: BlobEntry[]; blobs: Map<string, BlobLocation> } | undefined;
  let saved: Omit<BlobSaved, 'bytes'> = { blobs: 0, unread: 0 };
  const last = parts.length - 1;
  const finish = async (k: number, message: PackEnd) => {
    ends[k] = message;
    if (ends.filter(Boolean).length === parts.length) allEnded();
    if (k < last) return [Buffer.alloc(END_OF_ARCHIVE)];
    await ended;
    const { end, blobs } = joined(ends, parts, packs);
    const { entries, digests, rooted, counts } = inListingOrder(input.pack.entries, settled, rest, end);
    const trailing: Buffer[] = [];
    let at = message.packed!.bytes;
    for (const [path, data] of input.pack.metaFiles(counts, digests, rooted)) {
      const id = sha256(data);
      entries.push({ path, type: 'File', mode: 0o644, size: data.length, mtime: input.pack.created, blob: id });
      if (blobs.has(id) || input.known.has(id)) continue;
      // A hash fits a ustar name: the content starts one block into the entry.
      const entry = tarFile(id, data, 0);
      trailing.push(entry);
      blobs.set(id, { pack: packs[last]!, offset: at + BLOCK_SIZE, size: data.length });
      at += entry.length;
      kept.push(keepBlob(copies, id, data));
    }
    saved = { blobs: blobs.size, unread: settled.filter((s) => s?.entry.type === 'File').length };
    for (const { blob } of entries) if (blob && !blobs.has(blob)) blobs.set(blob, input.known.get(blob)!);
    manifest = { entries, blobs };
    return [...trailing, Buffer.alloc(END_OF_ARCHIVE)];
  };
  let failure: { error: unknown } | undefined;
  const uploads = parts.map(async (part, k) => {
    const chunks = packedChunks({ ...input.pack, pool: pools[k]!, entries: part.map((index) => input.pack.entries[index]!), signal },
      (message) => finish(k, message), { known: [...input.known.keys()], cacheDir: copies }, here);
    const sizeHint = packSize(part.map((index) => input.stats.get(input.pack.entries[index]!.path)));
    try {
      return (await input.store.put(packs[k]!, Readable.from(input.through ? input.through(chunks) : chunks), signal, sizeHint)).bytes;
    } catch (error) {
      // The first failure is the one told: the others were stopped because of it.
      failure ??= { error };
      failed.abort(error);
      throw error;
    }
  });
  // Every upload settles (an aborted one cleans up after itself) before a failure is told.
  const uploaded = await Promise.allSettled(uploads);
  await Promise.all(pools.slice(1).map((pool) => pool.close()));
  if (failure) throw failure.error;
  let bytes = uploaded.reduce((sum, result) => sum + (result.status === 'fulfilled' ? result.value : 0), 0);
  await Promise.all(kept);
  await recheckPacks(input.store, manifest!.blobs, input.signal);
  // The index may name this save's blobs before the manifest is written: they are in the store.
  const [put] = await Promise.all([
    input.store.put(input.key, Readable.from([gzipSync(formatBlobManifest(manifest!), { level: 1 })]), input.signal),
    cacheDir === undefined ? undefined : remember([indexFile(cacheDir, input.store)], manifest!.blobs),
  ]);
  bytes += put.bytes;
  if (copies !== undefined) await noteAdded(copies, bytes);
  return { bytes, ...saved };
}
