import { createHash, hash as hashOnce } from 'node:crypto';
import { closeSync, lstatSync, lutimesSync, openSync, readlinkSync, readSync, realpathSync, constants, type Stats } from 'node:fs';
import { parentPort, threadId } from 'node:worker_threads';
import { getSystemErrorMap } from 'node:util';
import { hasherName, native, type NativeHasher } from './hasher.js';
import { COMPRESSED_LIMIT, packEntryName, type BlobEntry } from '../src/core/blobs.js';
import { ByteFinder } from '../src/core/find.js';
import { textFromBytePath } from '../src/core/paths.js';
import { BLOCK_SIZE, encodeUstarHeader, portableMode, tarPadding, type UstarFields } from '../src/core/ustar.js';
import { describeError } from '../src/core/errors.js';
import { listDirectory } from '../src/core/list-directory.js';
import type {
  BlobPackTask, HashResult, HashTask, LoadedMessage, PackCounts, PackedBlob, PackMessage, PackTask, SetTimesResult, SetTimesTask, UnpackResult, UnpackTask,
  WalkHashResult, WalkHashTask,
} from './types.js';

import { atLeast, keepBlob } from './materialize.js';
import { zstd } from './zstd.js';

export { materialize } from './materialize.js';

// One read buffer per worker thread, reused for every file: big files stream through it. 128 KiB
// stays in the core's cache between the read and the hash (1 MiB made big files 25% slower).
const CHUNK = 1 << 17;
const buffer = Buffer.allocUnsafe(CHUNK);

function absolute(root: string, path: string): Buffer {
  return Buffer.from(`${root}/${path}`, 'latin1');
}

function md5OfFile(path: Buffer): { digest: string; bytes: number } {
  // O_NONBLOCK: opening a fifo that slipped in must not hang the worker; reading it fails instead.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    // Most source files fit one read: a short read of a regular file is its end, so hash it in one
    // call, without a hash object and without a second read.
    const first = readSync(fd, buffer, 0, CHUNK, null);
    if (first < CHUNK) return { digest: hashOnce('md5', buffer.subarray(0, first), 'hex'), bytes: first };
    const hash = createHash('md5').update(buffer);
    let bytes = first;
    for (let n; (n = readSync(fd, buffer, 0, CHUNK, null)) > 0;) {
      hash.update(buffer.subarray(0, n));
      bytes += n;
    }
    return { digest: hash.digest('hex'), bytes };
  } finally {
    closeSync(fd);
  }
}

function errnoReason(errno: number): string {
  const [code, message] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, 'unknown error'];
  return `${code}: ${message}`;
}

function hashFilesNative(hasher: NativeHasher, task: HashTask, result: HashResult): void {
  const [digests, errors, bytes] = hasher.hashFiles(Buffer.from(`${task.root}/`, 'latin1'), task.files.join('\0'));
  const start = result.digests.length;
  for (let i = 0; i < task.files.length; i++) result.digests.push(digests.slice(32 * i, 32 * i + 32));
  for (const [index, errno] of errors) {
    result.digests[start + index] = null;
    result.errors.push([start + index, errnoReason(errno)]);
  }
  result.bytes += bytes;
}

function hashFilesCrypto(task: HashTask, result: HashResult): void {
  for (const path of task.files) {
    try {
      const { digest, bytes } = md5OfFile(absolute(task.root, path));
      result.digests.push(digest);
      result.bytes += bytes;
    } catch (error) {
      result.errors.push([result.digests.length, describeError(error)]);
      result.digests.push(null);
    }
  }
}

/** MD5 of each file's content and of each symlink's target string (links are never followed). */
export function hash(task: HashTask): HashResult {
  const result: HashResult = { hasher: hasherName, digests: [], errors: [], bytes: 0 };
  if (native) hashFilesNative(native, task, result);
  else hashFilesCrypto(task, result);
  for (const path of task.symlinks) {
    try {
      const target = readlinkSync(absolute(task.root, path), { encoding: 'buffer' });
      result.digests.push(createHash('md5').update(target).digest('hex'));
    } catch (error) {
      result.errors.push([result.digests.length, describeError(error)]);
      result.digests.push(null);
    }
  }
  return result;
}

// Files per hashing call while a task walks: small enough to stop soon after the budget is spent.
const WALK_BATCH = 64;
// Fewer files than this go back to be batched with others: the SIMD hasher's eight lanes need company.
const WALK_MIN_FILES = 16;

/**
 * Lists the task's directories and hashes what they hold: the walk runs on the pool's threads,
 * beside the hashing, instead of on the main thread between them.
 */
export function walkHash(task: WalkHashTask): WalkHashResult {
  const found: string[] = [];
  const result: WalkHashResult = {
    subdirs: [], others: [], unreadable: [], pending: [], files: [], symlinks: [], hashed: { hasher: hasherName, digests: [], errors: [], bytes: 0 },
  };
  const root = Buffer.from(task.root, 'latin1');
  const listsOf = { file: found, dir: result.subdirs, symlink: result.symlinks, other: result.others };
  for (const dir of task.dirs) {
    try {
      listDirectory(root, dir, (path, kind) => listsOf[kind].push(path));
    } catch (error) {
      result.unreadable.push([dir, describeError(error)]);
    }
  }
  let at = 0;
  while (found.length >= WALK_MIN_FILES && at < found.length && result.hashed.bytes < task.budget) {
    const part = hash({ root: task.root, files: found.slice(at, at + WALK_BATCH), symlinks: [] });
    for (const [index, why] of part.errors) result.hashed.errors.push([at + index, why]);
    for (const digest of part.digests) result.hashed.digests.push(digest);
    result.hashed.bytes += part.bytes;
    at += WALK_BATCH;
  }
  result.files = found.slice(0, at);
  result.pending = found.slice(at);
  const links = hash({ root: task.root, files: [], symlinks: result.symlinks });
  for (const [index, why] of links.errors) result.hashed.errors.push([result.files.length + index, why]);
  for (const digest of links.digests) result.hashed.digests.push(digest);
  return result;
}

/** Sets atime and mtime of each path (of the link itself for symlinks). */
export function setTimes(task: SetTimesTask): SetTimesResult {
  const errors: [number, string][] = [];
  task.paths.forEach((path, index) => {
    const mtime = task.mtimes[index]!;
    try {
      lutimesSync(absolute(task.root, path), mtime, mtime);
    } catch (error) {
      errors.push([index, describeError(error)]);
    }
  });
  return { errors };
}

// Packing: tar chunks of 1 MiB, at most 8 unconsumed (8 MiB between this thread and the reader).
const PACK_CHUNK = 1 << 20;
const PACK_IN_FLIGHT = 8;

// The blob layout: a file's content is read whole into this buffer (grown as needed) when it is at
// most this big, so that its hash, which names it in the pack, is known before its header is written;
// a bigger file is read twice, and must read the same both times.
const WHOLE_LIMIT = COMPRESSED_LIMIT;
let whole = Buffer.allocUnsafeSlow(1 << 20);
let frame = Buffer.allocUnsafeSlow(1 << 20);
/** zstd's level for blobs: its fastest but one, as for archives (`zstd -1`). */
const BLOB_LEVEL = 1;
/** A frame must save at least a 32nd of its blob, or the blob is kept as it is. */
const WORTH = 1 / 32;

/** The blob's zstd frame (a view of `frame`), or undefined where it would not save enough. */
function compressed(data: Buffer): Buffer | undefined {
  if (!zstd || data.length < 64) return undefined;
  frame = atLeast(frame, data.length);
  const n = zstd.compress(data, frame.subarray(0, Math.floor(data.length * (1 - WORTH))), BLOB_LEVEL);
  return n > 0 ? frame.subarray(0, n) : undefined;
}

interface PackWriter {
  header(fields: UstarFields): void;
  put(data: Buffer): void;
  zeros(n: number): void;
}

/** Reads `size` bytes of `fd` from `position` into `into`; a short read means the file shrank. */
function readFully(fd: number, into: Buffer, size: number, position: number, path: string): Buffer {
  for (let at = 0; at < size;) {
    const n = readSync(fd, into, at, size - at, position + at);
    if (n === 0) throw new Error(`${path}: file shrank while it was being packed`);
    at += n;
  }
  return into.subarray(0, size);
}

/**
 * The pack task's blob layout: entries become manifest entries, and a file's content goes into the
 * pack as an entry named by its SHA-256 unless the store or this pack already holds it.
 */
function packBlobs(task: BlobPackTask, rootBytes: Buffer, out: PackWriter) {
  const known = new Set(task.known);
  const entries: BlobEntry[] = [];
  /** The task's index of each entry (some are left out). */
  const indexes: number[] = [];
  const added: PackedBlob[] = [];
  let offset = 0;
  /**
   * Appends a new blob (its header, then `write` puts the `stored` bytes: the content, or with
   * `frame` (the content's size, the frame's SHA-256), a frame of it) and records where it starts.
   */
  const add = (id: string, stored: number, write: () => void, frame?: { size: number; hash: string }) => {
    out.header({ path: packEntryName(id, frame !== undefined), type: 'File', mode: 0o644, size: stored, mtime: 0 });
    added.push(frame === undefined ? [id, offset + BLOCK_SIZE, stored] : [id, offset + BLOCK_SIZE, frame.size, stored, frame.hash]);
    write();
    out.zeros(tarPadding(stored));
    offset += BLOCK_SIZE + stored + tarPadding(stored);
    known.add(id);
  };
  return {
    entries,
    indexes,
    added,
    /** An entry without content. */
    entry(index: number, fields: UstarFields): void {
      entries.push(fields);
      indexes.push(index);
    },
    /** Reads an open file: its manifest entry, and its content into the pack if new. */
    file(index: number, fd: number, fields: UstarFields): { digest: string; mentionsRoot: boolean } {
      const { size, path } = fields;
      const finder = new ByteFinder(rootBytes);
      let id: string;
      let digest: string;
      if (size <= WHOLE_LIMIT) {
        whole = atLeast(whole, size);
        const data = readFully(fd, whole, size, 0, path);
        digest = hashOnce('md5', data, 'hex');
        id = hashOnce('sha256', data, 'hex');
        finder.feed(data, false);
        if (!known.has(id)) {
          const zst = compressed(data);
          if (zst) add(id, zst.length, () => out.put(zst), { size, hash: hashOnce('sha256', zst, 'hex') });
          else add(id, size, () => out.put(data));
          if (task.cacheDir !== undefined) keepBlob(task.cacheDir, id, zst ?? data, zst !== undefined);
        }
      } else {
        const md5 = createHash('md5');
        const sha = createHash('sha256');
        for (let at = 0; at < size; at += CHUNK) {
          const piece = readFully(fd, buffer, Math.min(CHUNK, size - at), at, path);
          md5.update(piece);
          sha.update(piece);
          finder.feed(piece, at + piece.length < size);
        }
        digest = md5.digest('hex');
        id = sha.digest('hex');
        if (!known.has(id)) {
          add(id, size, () => {
            const again = createHash('sha256');
            for (let at = 0; at < size; at += CHUNK) {
              const piece = readFully(fd, buffer, Math.min(CHUNK, size - at), at, path);
              again.update(piece);
              out.put(piece);
            }
            if (again.digest('hex') !== id) throw new Error(`${path}: file changed while it was being packed`);
          });
        }
      }
      entries.push({ ...fields, blob: id });
      indexes.push(index);
      return { digest, mentionsRoot: finder.found };
    },
  };
}

function ustarHeader(fields: UstarFields, block: Buffer): Buffer {
  if (!encodeUstarHeader(fields, block)) throw new Error(`${fields.path}: no ustar header fits`);
  return block;
}

/**
 * Writes the tar entries synchronously into chunks posted to the reader (with `task.blobs`, the
 * pack of new blobs; see packBlobs): one lstat, one open and a
 * few reads per file, straight into the chunk (node-tar's Pack costs several times that per small
 * file). Headers are node-tar's, portable as its Pack makes them: no owners, no atimes, no
 * directory times; a PAX header where a name does not fit. Hard links become Link entries.
 */
export async function pack(task: PackTask): Promise<void> {
  // Loaded here, not with the module: hashing threads never need node-tar. A pack's headers name
  // blobs by their hash, always plain ustar: no node-tar (a tenth of a warm save's time to load).
  const { tarHeader } = task.blobs ? { tarHeader: ustarHeader } : await import('../src/core/tar-header.js');
  const flow = new Int32Array(task.flow);
  const counts: PackCounts = { files: 0, dirs: 0, bytes: 0 };
  let chunk = Buffer.allocUnsafeSlow(PACK_CHUNK);
  let used = 0;
  let sent = 0;

  const send = () => {
    for (; !task.here;) {
      if (Atomics.load(flow, 1) !== 0) throw new Error('packing cancelled');
      const consumed = Atomics.load(flow, 0);
      if (sent - consumed < PACK_IN_FLIGHT) break;
      Atomics.wait(flow, 0, consumed);
    }
    const message: PackMessage = { chunk: chunk.buffer as ArrayBuffer, bytes: used };
    task.port.postMessage(message, [chunk.buffer as ArrayBuffer]);
    sent++;
    chunk = Buffer.allocUnsafeSlow(PACK_CHUNK);
    used = 0;
  };
  let written = 0;
  const put = (data: Buffer) => {
    written += data.length;
    for (let at = 0; at < data.length;) {
      if (used === PACK_CHUNK) send();
      const n = data.copy(chunk, used, at);
      used += n;
      at += n;
    }
  };
  const zeros = (n: number) => put(Buffer.alloc(n));
  const block = Buffer.alloc(BLOCK_SIZE);
  const header = (fields: UstarFields) => put(tarHeader(fields, block));
  // MD5 of each file as it passes through the chunk (settle compares rewritten files with it), and
  // whether it mentions the root (a restore elsewhere rewrites only those).
  const rootBytes = Buffer.from(task.root, 'latin1');
  const rooted: string[] = [];
  /** Streams an open file's `size` bytes into the chunks; returns its MD5 and whether it mentions the root. */
  const fileContent = (fd: number, path: string, size: number): { digest: string; mentionsRoot: boolean } => {
    const finder = new ByteFinder(rootBytes);
    let digest: string | undefined;
    let hash: ReturnType<typeof createHash> | undefined;
    for (let left = size; left > 0;) {
      if (used === PACK_CHUNK) send();
      const n = readSync(fd, chunk, used, Math.min(left, PACK_CHUNK - used), null);
      if (n === 0) throw new Error(`${path}: file shrank while it was being packed`);
      const piece = chunk.subarray(used, used + n);
      // Most files come in one read: hashed in one call, without a hash object.
      if (n === size) digest = hashOnce('md5', piece, 'hex');
      else (hash ??= createHash('md5')).update(piece);
      finder.feed(piece, n < left);
      used += n;
      written += n;
      left -= n;
    }
    digest ??= (hash ?? createHash('md5')).digest('hex');
    zeros(tarPadding(size));
    return { digest, mentionsRoot: finder.found };
  };
  // Each entry's directory must still be where it was listed, not swapped for a link. A directory
  // listed as an entry is confirmed by its own lstat once its parent is (entries come sorted,
  // parents first); any other is checked by its real path, once (a realpath per file cost a third more).
  const confirmed = new Map<string, boolean>();
  const inTree = (bytePath: string): boolean => {
    const slash = bytePath.lastIndexOf('/');
    const dir = slash < 0 ? '' : `/${bytePath.slice(0, slash)}`;
    let found = confirmed.get(dir);
    if (found === undefined) {
      try {
        found = realpathSync.native(Buffer.from(`${task.root}${dir}`, 'latin1'), 'latin1') === `${task.realRoot}${dir}`;
      } catch {
        found = false;
      }
      confirmed.set(dir, found);
    }
    return found;
  };

  const blobs = task.blobs ? packBlobs(task.blobs, rootBytes, { header, put, zeros }) : undefined;
  /** An entry without content: a header in a tar, a manifest entry in the blob layout. */
  const entry = (index: number, fields: UstarFields) => (blobs ? blobs.entry(index, fields) : header(fields));

  const firstPathOfInode = new Map<string, string>();
  const digests: [string, string][] = [];
  const skipped: [string, string][] = [];
  const KIND_OF: Record<string, string> = { f: 'file', d: 'directory', l: 'symlink' };
  let link = 0;
  task.entries.forEach((bytePath, index) => {
    const listed = task.kinds[index];
    const target = listed === 'l' ? task.targets[link++] : undefined;
    const absolute = Buffer.from(`${task.root}/${bytePath}`, 'latin1');
    if (!inTree(bytePath)) {
      skipped.push([bytePath, 'leads out of the tree']);
      return;
    }
    let stat: Stats;
    try {
      stat = lstatSync(absolute);
    } catch (error) {
      skipped.push([bytePath, describeError(error)]);
      return;
    }
    const kind = stat.isFile() ? 'f' : stat.isDirectory() ? 'd' : stat.isSymbolicLink() ? 'l' : '?';
    if (kind !== listed) {
      skipped.push([bytePath, `was a ${KIND_OF[listed!]} when listed, is not now`]);
      return;
    }
    const path = textFromBytePath(bytePath);
    const mode = portableMode(stat.mode, stat.isDirectory());
    if (kind === 'd') {
      confirmed.set(`/${bytePath}`, true);
      entry(index, { path: `${path}/`, type: 'Directory', mode, size: 0 });
      counts.dirs++;
    } else if (kind === 'l') {
      let now: string | undefined;
      try {
        now = readlinkSync(absolute, 'utf8');
      } catch (error) {
        skipped.push([bytePath, describeError(error)]);
        return;
      }
      if (now !== target) {
        skipped.push([bytePath, 're-pointed since it was listed']);
        return;
      }
      entry(index, { path, type: 'SymbolicLink', mode, size: 0, mtime: Math.floor(stat.mtimeMs / 1000), linkpath: target });
      counts.files++;
    } else {
      const inode = `${stat.dev}:${stat.ino}`;
      const linkTarget = stat.nlink > 1 ? firstPathOfInode.get(inode) : undefined;
      if (linkTarget !== undefined) {
        entry(index, { path, type: 'Link', mode, size: 0, mtime: Math.floor(stat.mtimeMs / 1000), linkpath: linkTarget });
      } else {
        // Opened before its header is written: a file that cannot be read is left out whole.
        let fd: number;
        try {
          fd = openSync(absolute, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        } catch (error) {
          skipped.push([bytePath, describeError(error)]);
          return;
        }
        try {
          if (stat.nlink > 1) firstPathOfInode.set(inode, path);
          const fields: UstarFields = { path, type: 'File', mode, size: stat.size, mtime: Math.floor(stat.mtimeMs / 1000) };
          let digest: string;
          let mentionsRoot: boolean;
          if (blobs) ({ digest, mentionsRoot } = blobs.file(index, fd, fields));
          else {
            header(fields);
            ({ digest, mentionsRoot } = fileContent(fd, path, stat.size));
          }
          digests.push([bytePath, digest]);
          if (mentionsRoot) rooted.push(bytePath);
        } finally {
          closeSync(fd);
        }
        counts.bytes += stat.size;
      }
      counts.files++;
    }
  });
  if (used > 0) send();
  const end: PackMessage = {
    end: counts, digests, rooted, skipped, ...(blobs ? { packed: { entries: blobs.entries, indexes: blobs.indexes, blobs: blobs.added, bytes: written } } : {}),
  };
  task.port.postMessage(end);
}

/** The unpack task (workers/unpack.ts), loaded on first use: hashing threads never need node-tar. */
export async function unpack(task: UnpackTask): Promise<UnpackResult> {
  return (await import('./unpack.js')).unpack(task);
}

// Last: the pool may terminate this thread from now on (see LoadedMessage).
parentPort?.postMessage({ loadedThread: threadId } satisfies LoadedMessage);
