import { createHash } from 'node:crypto';
import type { Compression } from './config.js';

/** Version of the archive layout; bump it when an archive's meaning changes. */
export const ARCHIVE_FORMAT = 2;

// The one owner of archive key naming: how keys are made and read (ls, prune, misses, the S3
// pointer layout all read them here), so a new codec or field cannot vanish from one of them.
const EXTENSIONS: Record<Compression, string> = { gzip: '.tar.gz', zstd: '.tar.zst', none: '.tar' };
const escaped = (text: string) => text.replace(/[.]/g, '\\.');
/** The pattern of any archive extension, without anchors (longest first, so .tar.gz is not read as .tar). */
export const EXTENSION_PATTERN = `(?:${Object.values(EXTENSIONS).sort((a, b) => b.length - a.length).map(escaped).join('|')})`;
const ARCHIVE_KEY = new RegExp(`^(.+)/v(\\d+)-([0-9a-f]{8})([0-9a-f]{8})(${EXTENSION_PATTERN})$`);

export interface ArchiveKey {
  name: string;
  format: number;
  /** Hash of the format, cache dirs and compression. */
  settings: string;
  /** Hash of the salt. */
  salt: string;
  extension: string;
}

/** What an archive key says, or undefined for any other object (a marker, an S3 archive object, a digest). */
export function parseArchiveKey(key: string): ArchiveKey | undefined {
  const match = ARCHIVE_KEY.exec(key);
  return match ? { name: match[1]!, format: Number(match[2]), settings: match[3]!, salt: match[4]!, extension: match[5]! } : undefined;
}

/** What a cache key says, in either layout: an archive, or a blob-layout manifest. */
export interface CacheKey {
  name: string;
  layout: 'archive' | 'blobs';
  format: number;
  settings: string;
  salt: string;
}

/**
 * The one parser of cache keys (ls, prune, --lookup-only, the miss explanation): an archive key or
 * a blob manifest's key; undefined for anything else (packs, marks, digests, temporaries, markers).
 */
export function parseCacheKey(key: string): CacheKey | undefined {
  const archive = parseArchiveKey(key);
  if (archive) return { name: archive.name, layout: 'archive', format: archive.format, settings: archive.settings, salt: archive.salt };
  const blobs = BLOBS_KEY.exec(key);
  return blobs ? { name: blobs[1]!, layout: 'blobs', format: Number(blobs[2]), settings: blobs[3]!, salt: blobs[4]! } : undefined;
}

/** The cache name of a cache key (either layout), or undefined for anything else. */
export function cacheNameOf(key: string): string | undefined {
  return parseCacheKey(key)?.name;
}

export interface KeyInputs {
  cacheDirs: readonly string[];
  compression: Compression;
  /** Anything else that makes archives incompatible, such as a toolchain fingerprint. */
  salt?: string | undefined;
}

function shortHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 8);
}

/**
 * The object key of a cache: `<name>/v<format>-<settings><salt><ext>`, where `settings` hashes the
 * archive format, cache dirs and compression and `salt` hashes the salt (8 hex digits each), as
 * @actions/cache versions its keys: anything that changes what an archive means is a clean miss,
 * never a restore of something incompatible, and a miss can tell which half differed.
 */
export function objectKey(name: string, inputs: KeyInputs): string {
  const settings = shortHash([ARCHIVE_FORMAT, [...inputs.cacheDirs].sort(), inputs.compression]);
  return `${name}/v${ARCHIVE_FORMAT}-${settings}${shortHash(inputs.salt ?? '')}${EXTENSIONS[inputs.compression]}`;
}

/**
 * Why `wanted` is missing although `others` (keys of the same name) exist: the salt differs, or the
 * settings (format, cache dirs, compression) do. Undefined when there are no others.
 */
export function whyMissing(wanted: string, others: readonly string[]): string | undefined {
  const mine = parseCacheKey(wanted);
  const found = others.map(parseCacheKey).filter((parsed) => parsed !== undefined);
  if (!mine || found.length === 0) return undefined;
  const same = found.filter((parsed) => parsed.layout === mine.layout);
  const what = mine.layout === 'blobs' ? 'blob-layout caches' : 'archives';
  if (same.length === 0) return `caches of this name exist in the ${mine.layout === 'blobs' ? 'archive' : 'blob'} layout only (--layout)`;
  if (same.some((parsed) => parsed.format === mine.format && parsed.settings === mine.settings)) {
    return `${what} of this name exist for another toolchain salt (the compiler or build inputs changed)`;
  }
  return `${what} of this name exist for other settings (${mine.layout === 'blobs' ? 'cache dirs or manifest format' : 'cache dirs, compression or archive format'})`;
}

/** Version of the blob layout's manifest (core/blobs.ts); part of its key. */
export const BLOBS_FORMAT = 2;
const BLOBS_KEY = /^(.+)\/b(\d+)-([0-9a-f]{8})([0-9a-f]{8})\.blobs$/;
const PACK_KEY = /^blobs\/packs\/([0-9a-f]{16})\.pack$/;
const MARK_KEY = /^blobs\/marks\/([0-9a-f]{16})\.(gc|repack)$/;

/**
 * The key of a cache in the blob layout: its manifest, `<name>/b<format>-<settings><salt>.blobs`
 * (settings: the format and cache dirs; blobs are compressed one by one, see core/blobs.ts).
 */
export function blobsKey(name: string, inputs: KeyInputs): string {
  return `${name}/b${BLOBS_FORMAT}-${shortHash([BLOBS_FORMAT, [...inputs.cacheDirs].sort()])}${shortHash(inputs.salt ?? '')}.blobs`;
}

/** Where every pack lives, whatever the cache: a blob is shared by every cache that holds it. */
export const PACKS_PREFIX = 'blobs/packs/';

export function packKey(nonce: string): string {
  return `${PACKS_PREFIX}${nonce}.pack`;
}

export function isPackKey(key: string): boolean {
  return PACK_KEY.test(key);
}

/**
 * Where prune's marks live (see core/gc.ts): `blobs/marks/<pack nonce>.gc` on a pack no manifest
 * named, `.repack` on a pack mostly garbage. The mark's time is when it was made.
 */
export const MARKS_PREFIX = 'blobs/marks/';
export type MarkKind = 'gc' | 'repack';

export function markKey(pack: string, kind: MarkKind): string {
  return `${MARKS_PREFIX}${PACK_KEY.exec(pack)?.[1] ?? ''}.${kind}`;
}

/** The pack a mark is on and its kind, or undefined for any other key. */
export function parseMarkKey(key: string): { pack: string; kind: MarkKind } | undefined {
  const match = MARK_KEY.exec(key);
  return match ? { pack: packKey(match[1]!), kind: match[2] as MarkKind } : undefined;
}

/** The key of a cache in either layout. */
export function cacheKey(name: string, inputs: KeyInputs & { layout: 'archive' | 'blobs' }): string {
  return inputs.layout === 'blobs' ? blobsKey(name, inputs) : objectKey(name, inputs);
}
