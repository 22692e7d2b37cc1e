// The S3 layout that makes racing saves safe: each save uploads its archive under a key of its
// own (`main/v2-….tar.zst` → `main/v2-….<nonce>.tar.zst`), never written again, and only then
// replaces the small pointer at the cache's key that names it with its SHA-256. A reader follows
// the pointer, so it reads one whole archive of one writer whatever the order in which racing
// writers finish. This module owns the naming of what lies beside a cache key (core/key.ts, of the key).
import { EXTENSION_PATTERN } from './key.js';

/** What the pointer at a cache's key says. */
export interface Pointer {
  /** The nonce of the archive object (see archiveObjectKey). */
  object: string;
  sha256: string;
  bytes: number;
}

export const POINTER_FORMAT = 1;
/**
 * Pointers are padded to one fixed size: a server that writes objects in place (s3rver) and gets
 * two racing pointer writes keeps one writer's whole pointer, never the tail of a longer one.
 */
export const POINTER_SIZE = 256;

const NONCE = /^[0-9a-f]{16}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const EXTENSION = new RegExp(`${EXTENSION_PATTERN}$`);
const ARCHIVE_OBJECT = new RegExp(`^(.+?)\\.([0-9a-f]{16})(${EXTENSION_PATTERN})$`);
/** A digest beside an archive of the format before pointers. */
const LEGACY_DIGEST = new RegExp(`^(.+${EXTENSION_PATTERN})\\.([0-9a-f]{16})\\.sha256$`);

/** Whether `key` names an archive (written through a pointer), not another object (a marker). */
export function isArchiveKey(key: string): boolean {
  return EXTENSION.test(key);
}

/** Where the archive with `nonce` of the cache `key` lives: the nonce before the extension. */
export function archiveObjectKey(key: string, nonce: string): string {
  const extension = EXTENSION.exec(key)?.[0] ?? '';
  return `${key.slice(0, key.length - extension.length)}.${nonce}${extension}`;
}

/** The prefix of every key beside `key`: its archive objects and old digests (and maybe others, see besideOf). */
export function besidePrefix(key: string): string {
  return `${key.replace(EXTENSION, '')}.`;
}

export function formatPointer(pointer: Pointer): Buffer {
  return Buffer.from(JSON.stringify({ format: POINTER_FORMAT, ...pointer }).padEnd(POINTER_SIZE, ' '));
}

/** The pointer in `text`, or undefined when it is not one (damaged, torn, of another format). */
export function parsePointer(text: string): Pointer | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const { format, object, sha256, bytes } = (value ?? {}) as Record<string, unknown>;
  if (format !== POINTER_FORMAT || typeof object !== 'string' || !NONCE.test(object) || typeof sha256 !== 'string'
    || !SHA256.test(sha256) || typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) return undefined;
  return { object, sha256, bytes };
}

/** What a raw key of the bucket is: an archive object or an old digest beside a cache key, or anything else. */
export function besideOf(key: string): { base: string; nonce: string; legacyDigest: boolean } | undefined {
  const object = ARCHIVE_OBJECT.exec(key);
  if (object) return { base: `${object[1]}${object[3]}`, nonce: object[2]!, legacyDigest: false };
  const digest = LEGACY_DIGEST.exec(key);
  return digest ? { base: digest[1]!, nonce: digest[2]!, legacyDigest: true } : undefined;
}

export interface RawObject {
  key: string;
  size: number;
  modified: Date;
}

/**
 * The listing as callers know it: one entry per cache key (a pointer, or an archive of the format
 * before), with the size of its newest archive object; the objects and digests beside are hidden.
 */
export function logicalListing(raw: readonly RawObject[]): RawObject[] {
  const newest = new Map<string, RawObject>();
  for (const object of raw) {
    const beside = besideOf(object.key);
    if (!beside || beside.legacyDigest) continue;
    const known = newest.get(beside.base);
    if (!known || known.modified < object.modified) newest.set(beside.base, object);
  }
  return raw.filter((object) => besideOf(object.key) === undefined)
    .map((object) => ({ ...object, size: newest.get(object.key)?.size ?? object.size }));
}

/** Archive objects older than this (than the newest beside the same key) are no save's in progress. */
export const ORPHAN_AGE_MS = 60 * 60_000;

/**
 * What a save that just pointed `key` at `current` may delete beside it: the archive the pointer
 * named before (`previous`; no reader is sent there any more), digests of the format before, and
 * objects of saves that lost a race or died, once older than ORPHAN_AGE_MS. A racing writer's
 * object is young and stays: its pointer may be about to name it.
 */
export function collectable(beside: readonly RawObject[], key: string, current: string, previous: string | undefined): string[] {
  const reference = beside.find((object) => object.key === archiveObjectKey(key, current))?.modified.getTime();
  return beside.filter((object) => {
    const info = besideOf(object.key);
    if (!info || info.base !== key || info.nonce === current) return false;
    if (info.legacyDigest || info.nonce === previous) return true;
    return reference !== undefined && reference - object.modified.getTime() > ORPHAN_AGE_MS;
  }).map((object) => object.key);
}
