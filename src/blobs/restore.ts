// The blob layout's restore: see docs/design.md, "Blob layout".
import { createHash } from 'node:crypto';
import { chmod, constants, copyFile, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readMeta, type ExtractedArchive } from '../archive.js';
import { cachedBlobName, parseBlobManifest, storedSize, type BlobLocation, type BlobManifest } from '../core/blobs.js';
import type { ExtractLimits } from '../core/config.js';
import { META_DIR } from '../core/meta.js';
import { bytePathFromText, isWithin, normalizeRelative, parentOf, type BytePath } from '../core/paths.js';
import { ArchiveError, NbcError } from '../core/errors.js';
import type { WorkerPool } from '../pool.js';
import { PhaseReporter, type ProgressListener } from '../progress.js';
import type { Store } from '../stores/index.js';
import { EntryChecker } from '../core/entries.js';
import type { MaterializeBlob, MaterializeResult, MaterializeTask } from '../../workers/types.js';
import { indexFile, keepBlob, KNOWN_FILE, noteAdded, rememberWhenChecked, usable } from './cache.js';
import { readRange } from '../stores/range.js';
import { FETCHES, groupsOf, inLanes, PIECE, RUN, runsOf, type Run } from './fetch.js';
import { zstd } from '../../workers/zstd.js';

/** A manifest larger than this (compressed) is refused: it is read whole. */
const MANIFEST_LIMIT = 64 << 20;
/** Blobs from the local cache go to the pool in batches of at most this many files or bytes. */
const BATCH_FILES = 512;
const BATCH_BYTES = 16 << 20;

/** The blob manifest at `key`, or undefined when there is none. */
export async function readBlobManifest(store: Store, key: string, signal?: AbortSignal): Promise<BlobManifest | undefined> {
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

export interface BlobExtract {
  store: Store;
  key: string;
  /** Where restore keeps its state: what this manifest's blobs are goes there, for save. */
  stateDir: string;
  /** The local blob cache; read where it can be read, written where it can be written. */
  cacheDir: string | undefined;
  /** An empty directory to write into, on the tree's file system. */
  staging: string;
  cacheDirs: readonly string[];
  limits?: ExtractLimits | undefined;
  /** Symlinks of the source tree (text paths): no symlink of the manifest may lead through them. */
  treeSymlinks?: ReadonlySet<string>;
  pool: WorkerPool;
  onProgress?: ProgressListener | undefined;
  signal?: AbortSignal | undefined;
}

/** What a checked manifest asks to be written: directories, each blob's files, links. */
interface Layout {
  dirs: [path: string, mode: number | null][];
  blobs: Map<string, MaterializeBlob>;
  links: [path: string, type: 'h' | 'l', target: string][];
  /** Each file's blob, by byte path (the meta files left out). */
  blobOf: Map<BytePath, string>;
}

/**
 * Runs every entry through the unpacker's checks (paths, cache dirs, links, duplicates, limits)
 * before anything is written; the first problem is thrown as an ArchiveError.
 */
function layOut(manifest: BlobManifest, checker: EntryChecker): Layout {
  const dirs = new Map<string, number | null>();
  const blobs = new Map<string, MaterializeBlob>();
  const hardLinks: Layout['links'] = [];
  const symlinks: Layout['links'] = [];
  const blobOf = new Map<BytePath, string>();
  const contentOf = new Map<string, string>();
  for (const entry of manifest.entries) {
    const checked = {
      type: entry.type, path: entry.path, size: entry.size, mode: entry.mode, linkpath: entry.linkpath,
      mtime: entry.mtime === undefined ? undefined : new Date(entry.mtime * 1000),
    };
    if (!checker.admit(checked)) throw checker.problem!;
    const path = normalizeRelative(entry.path)!;
    for (let dir = parentOf(path); dir !== '.' && !dirs.has(dir); dir = parentOf(dir)) dirs.set(dir, null);
    const mode = checked.mode;
    let blob: string | undefined;
    if (entry.type === 'Directory') dirs.set(path, mode);
    else if (entry.type === 'SymbolicLink') symlinks.push([path, 'l', entry.linkpath!]);
    else if (entry.type === 'Link') {
      const target = normalizeRelative(entry.linkpath!)!;
      hardLinks.push([path, 'h', target]);
      blob = contentOf.get(target);
    } else {
      blob = entry.blob!;
      const location = manifest.blobs.get(blob)!;
      const { size, stored, frameHash } = location;
      const wanted = blobs.get(blob) ?? { id: blob, size, offset: 0, ...(stored === undefined ? {} : { stored }), ...(frameHash === undefined ? {} : { frameHash }), files: [] };
      wanted.files.push([path, mode]);
      blobs.set(blob, wanted);
    }
    if (blob !== undefined) {
      contentOf.set(path, blob);
      if (!isWithin(path, META_DIR)) blobOf.set(bytePathFromText(path), blob);
    }
  }
  checker.finish();
  if (checker.problem) throw checker.problem;
  return { dirs: [...dirs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), blobs, links: [...hardLinks, ...symlinks], blobOf };
}

/**
 * The blobs the local blob cache holds (by name; their content is checked when read), each with
 * whether its copy there is a zstd frame (see blobPath).
 */
async function cachedBlobs(dir: string | undefined, ids: Iterable<string>): Promise<Map<string, boolean>> {
  const found = new Map<string, boolean>();
  if (dir === undefined) return found;
  const subs = new Set([...ids].map((id) => id.slice(0, 2)));
  await Promise.all([...subs].map(async (sub) => {
    for (const name of await readdir(join(dir, sub)).catch(() => [])) {
      const blob = cachedBlobName(name);
      if (blob) found.set(blob.id, blob.frame || (found.get(blob.id) ?? false));
    }
  }));
  return found;
}

/** The result of a pool step, or the error it stands for. */
function checked(result: MaterializeResult, run?: Run): { bytes: number; refetch: string[] } {
  if ('mismatch' in result) throw new ArchiveError(`blob ${result.mismatch} in ${run?.pack} does not match its hash`);
  if ('stagingProblem' in result) throw new NbcError('NBC_STAGING', result.stagingProblem);
  return result;
}

/**
 * Restores the cache in the blob layout into `staging` as extractArchive restores an archive, and
 * with the same result (the entries checked by the unpacker's rules, the meta files read): blobs
 * in the local cache are read from it, the others fetched by ranges of their packs, coalesced; each
 * is checked against its hash. A fetched blob that does not match makes the cache unusable
 * (ArchiveError); a local one that does not is removed and fetched instead.
 */
export async function extractBlobs(manifest: BlobManifest, input: BlobExtract): Promise<ExtractedArchive> {
  const { store, pool, staging, signal } = input;
  const checker = new EntryChecker({ staging, cacheDirs: input.cacheDirs, ...(input.limits ? { limits: input.limits } : {}),
    ...(input.treeSymlinks ? { treeSymlinks: input.treeSymlinks } : {}) });
  const layout = layOut(manifest, checker);
  const copies = input.store.local ? undefined : input.cacheDir;
  const step = async (task: Omit<MaterializeTask, 'staging'>, run?: Run) => {
    signal?.throwIfAborted();
    return checked(await pool.materialize({ staging, ...task }, signal), run);
  };
  // Blobs are read while the directories are made; files are written once they are.
  const dirsMade = step({ dirs: layout.dirs });
  dirsMade.catch(() => {});

  const [indexing, cached] = await Promise.all([usable(input.cacheDir), cachedBlobs(copies, layout.blobs.keys())]);
  const keeping = indexing && copies !== undefined;
  const local: MaterializeBlob[] = [];
  const missing: [string, BlobLocation][] = [];
  for (const blob of layout.blobs.values()) {
    const frame = cached.get(blob.id);
    if (blob.size === 0 || frame === false) local.push(blob);
    else if (frame) local.push({ ...blob, cachedFrame: true });
    else missing.push([blob.id, manifest.blobs.get(blob.id)!]);
  }
  const fetching = new PhaseReporter(input.onProgress, 'fetch', { totalBytes: missing.reduce((sum, [, l]) => sum + storedSize(l), 0) });
  let fetched = 0;
  // Runs are read into at most FETCHES buffers of shared memory, reused: the pool threads write from
  // them, and memory stays at FETCHES × RUN (fresh buffers per run were left to the collector).
  const slots: Buffer[] = [];
  const fetchAll = async (wanted: [string, BlobLocation][]) => {
    if (!zstd && wanted.some(([, l]) => l.stored !== undefined)) {
      throw new ArchiveError('its blobs are compressed with zstd, and the zstd addon was not built (it needs libzstd when nix-build-cache is installed)', input.key);
    }
    const runs = runsOf(wanted.filter(([, l]) => storedSize(l) <= RUN));
    const large = wanted.filter(([, l]) => storedSize(l) > RUN);
    await inLanes<Run | [string, BlobLocation]>([...runs, ...large], FETCHES, async (item) => {
      if (!('pack' in item)) {
        await fetchLarge(item[0], item[1], layout.blobs.get(item[0])!);
        return;
      }
      const slot = slots.pop() ?? Buffer.from(new SharedArrayBuffer(RUN));
      // Both threads share a run: its blobs go to the pool in pieces, each task reading its own from
      // the one buffer, each as soon as its bytes are in (on a slow link, while the rest arrive).
      const pieces = groupsOf(item.blobs.map(([id, l]) => ({ ...layout.blobs.get(id)!, offset: l.offset - item.start })), (b) => [storedSize(b)], [PIECE]);
      const written: Promise<unknown>[] = [];
      const writeUpTo = (filled: number) => {
        while (written.length < pieces.length) {
          const piece = pieces[written.length]!;
          const last = piece.at(-1)!;
          if (last.offset + storedSize(last) > filled) return;
          const writing = dirsMade.then(() => step({ blobs: piece, data: slot.buffer as SharedArrayBuffer, ...(keeping ? { cacheDir: copies } : {}) }, item));
          writing.catch(() => {});
          written.push(writing);
        }
      };
      try {
        const data = await readRange(store, item.pack, item.start, item.end, signal, slot, writeUpTo);
        if (!data || data.length !== item.end - item.start) throw new ArchiveError(`the pack ${item.pack} is missing or shorter than its blobs`, input.key);
        // A store that ignored `into` (see Store.getRange).
        if (data.buffer !== slot.buffer) data.copy(slot);
        fetching.update(0, fetched += data.length);
        writeUpTo(data.length);
        await Promise.all(written);
      } finally {
        // The slot is reused only once no task reads it.
        await Promise.allSettled(written);
        slots.push(slot);
      }
    });
  };
  /** A blob bigger than a run (never compressed): read in pieces into its first file, hashed on the way, then copied. */
  const fetchLarge = async (id: string, location: BlobLocation, blob: MaterializeBlob) => {
    const [[first, mode], ...others] = blob.files as [[string, number], ...[string, number][]];
    const target = join(staging, first);
    const hash = createHash('sha256');
    await dirsMade;
    const file = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    const slot = slots.pop() ?? Buffer.from(new SharedArrayBuffer(RUN));
    try {
      for (let at = 0; at < location.size; at += RUN) {
        const end = Math.min(at + RUN, location.size);
        const piece = await readRange(store, location.pack, location.offset + at, location.offset + end, signal, slot);
        if (!piece || piece.length !== end - at) throw new ArchiveError(`the pack ${location.pack} is missing or shorter than its blobs`, input.key);
        hash.update(piece);
        await file.write(piece);
        fetching.update(0, fetched += piece.length);
      }
    } finally {
      slots.push(slot);
      await file.close();
    }
    if (hash.digest('hex') !== id) throw new ArchiveError(`blob ${id} in ${location.pack} does not match its hash`, input.key);
    for (const [path, fileMode] of others) {
      await copyFile(target, join(staging, path), constants.COPYFILE_EXCL);
      await chmod(join(staging, path), fileMode);
    }
    if (keeping) await keepBlob(copies, id, { file: target });
  };

  const refetch: string[] = [];
  const batches = groupsOf(local, (blob) => [blob.files.length, blob.size], [BATCH_FILES, BATCH_BYTES]);
  // The local cache is read while the missing blobs download; both wait for the pool's threads.
  const writing = Promise.all([
    inLanes(batches, 2 * pool.threads, async (blobs) => {
      await dirsMade;
      refetch.push(...(await step({ blobs, ...(copies === undefined ? {} : { cacheDir: copies }) })).refetch);
    }),
    fetchAll(missing),
  ]);
  // What the next save may name, and what the store holds: written while the blobs are, once the
  // first steps are out, and in place only once every blob has matched its hash: a save must never
  // name a damaged blob.
  const records = rememberWhenChecked([join(input.stateDir, KNOWN_FILE), ...(indexing ? [indexFile(input.cacheDir!, store)] : [])], manifest.blobs);
  try {
    await writing;
    if (refetch.length > 0) await fetchAll(refetch.map((id) => [id, manifest.blobs.get(id)!]));
    fetching.end(missing.length + refetch.length, fetched);
    await dirsMade;
    await step({ links: layout.links });
  } catch (error) {
    await records.drop();
    throw error;
  }
  await records.keep();
  // Only what was fetched made the cache grow.
  if (keeping) await noteAdded(copies, fetched, new Set(layout.blobs.keys()));
  return {
    entries: checker.entries, bytes: checker.bytes, warnings: checker.warnings(), blobs: layout.blobOf,
    ...await readMeta(staging, checker.entries),
  };
}
