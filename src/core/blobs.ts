// The blob layout's manifest: the one object at a cache's key, written last. It lists the tar
// entries of the archive the save would have written, in its order (paths, modes, times, link
// targets), each file's content named by its SHA-256, and where each blob lies: a pack (a plain
// tar of blobs named by their hash, never rewritten) and the byte range of its content there,
// either the content itself or one zstd frame of it (entry `<hash>.zst`).
// Restore checks its entries as unpacking checks a tar's (core/entries.ts EntryChecker).
import { BLOBS_FORMAT, isPackKey } from './key.js';

/**
 * Where a blob lies in a local blob cache: below a directory named by its hash's first two digits,
 * as `<hash>`, or as `<hash>.zst` when the copy is a zstd frame of it (as its pack holds it).
 */
export const blobPath = (cacheDir: string, id: string, frame = false) => `${cacheDir}/${id.slice(0, 2)}/${frame ? packEntryName(id, true) : id}`;

export type EntryType = 'File' | 'Directory' | 'SymbolicLink' | 'Link';

export interface BlobEntry {
  /** The path as the tar has it (the meta files under .cache-meta included). */
  path: string;
  type: EntryType;
  mode: number;
  /** Seconds; directories have none. */
  mtime?: number;
  size: number;
  /** A file's content (its SHA-256, hex). */
  blob?: string;
  /** A symlink's or hard link's target. */
  linkpath?: string;
}

/**
 * Where a blob lies: `pack` (a key), bytes [offset, offset + (stored ?? size)). `stored` is there
 * when those bytes are a zstd frame of the content (then at most COMPRESSED_LIMIT bytes, and the
 * frame smaller than it); without it they are the content.
 */
export interface BlobLocation {
  pack: string;
  offset: number;
  size: number;
  stored?: number;
  /**
   * The frame's SHA-256 (hex), where the save that compressed the blob recorded it: restore checks
   * the frame by it, before decompressing, instead of hashing the content (a frame is 2–3× smaller;
   * decompressing is deterministic). Manifests without it have their content checked.
   */
  frameHash?: string;
}

/** Blobs bigger than this are stored as they are: each compressed blob is (de)compressed whole, in memory. */
export const COMPRESSED_LIMIT = 16 << 20;

/** The bytes a blob takes in its pack. */
export const storedSize = (blob: { size: number; stored?: number }) => blob.stored ?? blob.size;

const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/** A location from its stored fields (the manifest's, the local index's), or undefined where they make none. */
export function blobLocation(pack: unknown, offset: unknown, size: unknown, stored: unknown, frameHash: unknown): BlobLocation | undefined {
  if (typeof pack !== 'string' || !isPackKey(pack) || !count(offset) || !count(size)) return undefined;
  if (stored === undefined) return frameHash === undefined ? { pack, offset, size } : undefined;
  if (!count(stored) || stored === 0 || stored >= size || size > COMPRESSED_LIMIT) return undefined;
  if (frameHash === undefined) return { pack, offset, size, stored };
  return typeof frameHash === 'string' && SHA256_HEX.test(frameHash) ? { pack, offset, size, stored, frameHash } : undefined;
}

/**
 * A location's fields after its pack, as stored: offset, size and, for a frame, its length and hash
 * (where known). Readers of the format before the hash take the fields before it and check content.
 */
export const locationFields = (l: BlobLocation): (number | string)[] => [
  l.offset, l.size, ...(l.stored === undefined ? [] : [l.stored]), ...(l.frameHash === undefined ? [] : [l.frameHash]),
];

export const FRAME_SUFFIX = '.zst';

/** The blob a file of a local blob cache holds and whether as a frame (see blobPath); undefined for other names (temporaries). */
export function cachedBlobName(name: string): { id: string; frame: boolean } | undefined {
  const frame = name.endsWith(FRAME_SUFFIX);
  const id = frame ? name.slice(0, -FRAME_SUFFIX.length) : name;
  return SHA256_HEX.test(id) ? { id, frame } : undefined;
}

/** A pack entry's name: the blob's hash, `.zst` when it is compressed. */
export const packEntryName = (id: string, compressed: boolean) => (compressed ? `${id}${FRAME_SUFFIX}` : id);

export interface BlobManifest {
  entries: BlobEntry[];
  blobs: Map<string, BlobLocation>;
}

const TYPES: Record<string, EntryType> = { f: 'File', d: 'Directory', l: 'SymbolicLink', h: 'Link' };
const LETTERS: Record<EntryType, string> = { File: 'f', Directory: 'd', SymbolicLink: 'l', Link: 'h' };
export const SHA256_HEX = /^[0-9a-f]{64}$/;

type Row = [path: string, type: string, mode: number, mtime: number | null, size: number, blobOrLink: string | null];

/** The manifest as JSON text (the caller compresses it): packs listed once, blobs by index. */
export function formatBlobManifest(manifest: BlobManifest): string {
  const packs = [...new Set([...manifest.blobs.values()].map((l) => l.pack))].sort();
  const index = new Map(packs.map((pack, i) => [pack, i]));
  const blobs: Record<string, (number | string)[]> = {};
  for (const [id, l] of manifest.blobs) blobs[id] = [index.get(l.pack)!, ...locationFields(l)];
  const entries: Row[] = manifest.entries.map((e) => [e.path, LETTERS[e.type], e.mode, e.mtime ?? null, e.size, e.blob ?? e.linkpath ?? null]);
  return JSON.stringify({ format: BLOBS_FORMAT, packs, blobs, entries });
}

/** The manifest in `text`, or the first problem with it. Paths are checked later, by unpacking. */
export function parseBlobManifest(text: string): BlobManifest | { problem: string } {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { problem: 'the blob manifest is not JSON' };
  }
  if (value?.format !== BLOBS_FORMAT) return { problem: `blob manifest of format ${String(value?.format)}, not ${BLOBS_FORMAT}` };
  const { packs, blobs, entries } = value;
  if (!Array.isArray(packs) || !packs.every((p) => typeof p === 'string' && isPackKey(p))) return { problem: 'bad pack list' };
  if (typeof blobs !== 'object' || blobs === null || !Array.isArray(entries)) return { problem: 'no blobs or entries' };
  const locations = new Map<string, BlobLocation>();
  for (const [id, where] of Object.entries(blobs as Record<string, unknown>)) {
    const [pack, offset, size, stored, frameHash] = Array.isArray(where) ? where as unknown[] : [];
    const location = SHA256_HEX.test(id) && count(pack) ? blobLocation(packs[pack], offset, size, stored, frameHash) : undefined;
    if (!location) return { problem: `bad blob ${id}` };
    locations.set(id, location);
  }
  const parsed: BlobEntry[] = [];
  for (const row of entries as unknown[]) {
    const [path, letter, mode, mtime, size, ref] = Array.isArray(row) ? row as unknown[] : [];
    const type = TYPES[String(letter)];
    if (typeof path !== 'string' || !type || !count(mode) || !(mtime === null || count(mtime)) || !count(size)
      || !(ref === null || typeof ref === 'string')) return { problem: `bad entry ${JSON.stringify(row)}` };
    const entry: BlobEntry = { path, type, mode, size, ...(mtime === null ? {} : { mtime }) };
    if (type === 'File') {
      if (typeof ref !== 'string' || locations.get(ref)?.size !== size) return { problem: `entry ${path} names no blob of its size` };
      entry.blob = ref;
    } else if (ref !== null) entry.linkpath = ref;
    parsed.push(entry);
  }
  return { entries: parsed, blobs: locations };
}
