// The blob layout's restore on a pool thread: blobs become staging files directly (no tar in
// between), each checked against its hash first (see checkedContent). src/blobs/restore.ts checks
// every path and decides what goes where; this only does the synchronous file work.
import { createHash, hash as hashOnce } from 'node:crypto';
import {
  chmodSync, closeSync, constants, fstatSync, linkSync, mkdirSync, openSync, readSync, renameSync, symlinkSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { blobPath, COMPRESSED_LIMIT } from '../src/core/blobs.js';
import { describeError } from '../src/core/errors.js';
import type { MaterializeBlob, MaterializeResult, MaterializeTask } from './types.js';
import { zstd } from './zstd.js';

const CHUNK = 1 << 20;
const buffer = Buffer.allocUnsafe(CHUNK);
/** Where a compressed blob is decompressed, and where a cached frame is read: each grown as needed (to at most COMPRESSED_LIMIT). */
let content = Buffer.allocUnsafeSlow(1 << 20);
let cachedFrame = Buffer.allocUnsafeSlow(1 << 20);
const WRITE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Subdirectories of the local blob cache known to exist. */
const cacheSubdirs = new Set<string>();

/** `buffer`, or where it is smaller than `size` a new one of at least twice its length: for a buffer reused blob after blob. */
export function atLeast(buffer: Buffer<ArrayBuffer>, size: number): Buffer<ArrayBuffer> {
  return buffer.length >= size ? buffer : Buffer.allocUnsafeSlow(Math.max(size, buffer.length * 2));
}

function writeAll(fd: number, data: Buffer): void {
  for (let at = 0; at < data.length;) at += writeSync(fd, data, at);
}

/** Opens each file the blob becomes: exclusive, never through a link (staging is private, but checked anyway). */
function openTargets(staging: string, blob: MaterializeBlob): number[] {
  const fds: number[] = [];
  try {
    for (const [path, mode] of blob.files) fds.push(openSync(`${staging}/${path}`, WRITE_NEW, mode));
  } catch (error) {
    fds.forEach((fd) => closeSync(fd));
    throw error;
  }
  return fds;
}

/**
 * Writes a blob from the local cache into its files, checked as a fetched one is. Returns false when
 * the cached copy is missing or damaged: it is then removed (cache and staging) for the caller to fetch.
 */
function fromCache(task: MaterializeTask, blob: MaterializeBlob): boolean {
  const copy = blobPath(task.cacheDir!, blob.id, blob.cachedFrame);
  let source: number;
  try {
    source = openSync(copy, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  let good = false;
  try {
    if (blob.cachedFrame) good = frameFromCache(source, task, blob);
    else good = contentFromCache(source, task, blob);
  } finally {
    closeSync(source);
  }
  if (!good) {
    for (const [path] of blob.files) {
      try {
        unlinkSync(`${task.staging}/${path}`);
      } catch { /* not made */ }
    }
    try {
      unlinkSync(copy);
    } catch { /* gone already */ }
  }
  return good;
}

/** A cached frame: read whole, checked (by the manifest's frame hash where it is that frame, else by content), decompressed. */
function frameFromCache(source: number, task: MaterializeTask, blob: MaterializeBlob): boolean {
  const stored = fstatSync(source).size;
  if (!zstd || stored >= blob.size || blob.size > COMPRESSED_LIMIT) return false;
  cachedFrame = atLeast(cachedFrame, stored);
  const frame = cachedFrame.subarray(0, stored);
  for (let at = 0; at < stored;) {
    const n = readSync(source, frame, at, stored - at, null);
    if (n === 0) return false;
    at += n;
  }
  // The pack's frame where it hashes as the manifest says; another save's frame of the blob is checked by content.
  const packed = stored === blob.stored && blob.frameHash !== undefined && hashOnce('sha256', frame, 'hex') === blob.frameHash;
  const data = decompressed(frame, blob.size);
  if (!data || (!packed && hashOnce('sha256', data, 'hex') !== blob.id)) return false;
  writeFiles(task, blob, data);
  return true;
}

/** Cached content: streamed into the files, hashed on the way. */
function contentFromCache(source: number, task: MaterializeTask, blob: MaterializeBlob): boolean {
  const fds = openTargets(task.staging, blob);
  try {
    let digest: string | undefined;
    const hash = createHash('sha256');
    let total = 0;
    for (let n; (n = readSync(source, buffer, 0, CHUNK, null)) > 0;) {
      const piece = buffer.subarray(0, n);
      // Most blobs come in one read: hashed in one call.
      if (total === 0 && n === blob.size && n < CHUNK) digest = hashOnce('sha256', piece, 'hex');
      else hash.update(piece);
      total += n;
      if (total > blob.size) break;
      for (const fd of fds) writeAll(fd, piece);
    }
    return total === blob.size && (digest ?? hash.digest('hex')) === blob.id;
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
}

function writeFiles(task: MaterializeTask, blob: MaterializeBlob, data: Buffer): void {
  const fds = openTargets(task.staging, blob);
  try {
    for (const fd of fds) writeAll(fd, data);
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
}

/**
 * Keeps a blob in the local cache (see src/blobs/cache.ts), its content or (`frame`) a zstd frame of
 * it, for the pack task too: best effort, a cache that cannot be written is only slower.
 */
export function keepBlob(dir: string, id: string, data: Buffer, frame = false): void {
  const sub = `${dir}/${id.slice(0, 2)}`;
  const path = blobPath(dir, id, frame);
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  try {
    if (!cacheSubdirs.has(sub)) mkdirSync(sub, { recursive: true });
    cacheSubdirs.add(sub);
    writeFileSync(temporary, data);
    renameSync(temporary, path);
  } catch {
    try {
      unlinkSync(temporary);
    } catch { /* never made */ }
  }
}

/**
 * A fetched blob's content, checked: its bytes in `data`, or its frame there decompressed; undefined
 * when they are not whole or do not match their hash (the frame's where the manifest has it, else the content's).
 */
function checkedContent(blob: MaterializeBlob, data: Buffer): Buffer | undefined {
  if (blob.stored === undefined) {
    const bytes = data.subarray(blob.offset, blob.offset + blob.size);
    return bytes.length === blob.size && hashOnce('sha256', bytes, 'hex') === blob.id ? bytes : undefined;
  }
  const frame = data.subarray(blob.offset, blob.offset + blob.stored);
  if (blob.frameHash !== undefined && hashOnce('sha256', frame, 'hex') !== blob.frameHash) return undefined;
  const into = decompressed(frame, blob.size);
  return into && (blob.frameHash !== undefined || hashOnce('sha256', into, 'hex') === blob.id) ? into : undefined;
}

/** A frame's content (a view of `content`), or undefined when it is no frame of `size` bytes. */
function decompressed(frame: Buffer, size: number): Buffer | undefined {
  content = atLeast(content, size);
  const into = content.subarray(0, size);
  try {
    // restore.ts sends compressed blobs only where the addon loads.
    zstd!.decompress(frame, into);
  } catch {
    return undefined;
  }
  return into;
}

/**
 * Does one step of a blob-layout restore (see MaterializeTask): directories, then blobs (from a
 * fetched run or the local cache), then links. Problems come back as results: an error thrown here
 * would lose its class.
 */
export function materialize(task: MaterializeTask): MaterializeResult {
  const at = (path: string) => `${task.staging}/${path}`;
  const refetch: string[] = [];
  let bytes = 0;
  try {
    for (const [path, mode] of task.dirs ?? []) {
      try {
        mkdirSync(at(path), 0o755);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (mode !== null) chmodSync(at(path), mode | 0o700);
    }
    const data = task.data && Buffer.from(task.data);
    for (const blob of task.blobs ?? []) {
      if (blob.size === 0) {
        openTargets(task.staging, blob).forEach((fd) => closeSync(fd));
      } else if (data) {
        const blobData = checkedContent(blob, data);
        if (!blobData) return { mismatch: blob.id };
        writeFiles(task, blob, blobData);
        // The local copy is what the pack holds: a frame is 2-3x fewer bytes to write (and keep).
        if (task.cacheDir !== undefined) {
          if (blob.stored === undefined) keepBlob(task.cacheDir, blob.id, blobData);
          else keepBlob(task.cacheDir, blob.id, data.subarray(blob.offset, blob.offset + blob.stored), true);
        }
      } else if (!fromCache(task, blob)) {
        refetch.push(blob.id);
        continue;
      }
      bytes += blob.size * blob.files.length;
    }
    for (const [path, type, target] of task.links ?? []) {
      if (type === 'h') linkSync(at(target), at(path));
      else symlinkSync(target, at(path));
    }
  } catch (error) {
    return { stagingProblem: `cannot write into the staging dir (${describeError(error)})` };
  }
  return { bytes, refetch };
}
