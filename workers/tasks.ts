import { createHash, hash as md5Once } from 'node:crypto';
import { closeSync, lutimesSync, openSync, readlinkSync, readSync, constants } from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import { loadNativeHasher, type NativeHasher } from '../src/native-hasher.js';
import type { HashResult, HashTask, SetTimesResult, SetTimesTask } from './types.js';

const native = loadNativeHasher();

// One read buffer per worker thread, reused for every file: big files stream through it. 128 KiB
// stays in the core's cache between the read and the hash (1 MiB made big files 25% slower).
const CHUNK = 1 << 17;
const buffer = Buffer.allocUnsafe(CHUNK);

function absolute(root: string, path: string): Buffer {
  return Buffer.from(`${root}/${path}`, 'latin1');
}

function reason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code && !e.message.startsWith(e.code) ? `${e.code}: ${e.message}` : e.message ?? String(error);
}

function md5OfFile(path: Buffer): { digest: string; bytes: number } {
  // O_NONBLOCK: opening a fifo that slipped in must not hang the worker; reading it fails instead.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    // Most source files fit one read: a short read of a regular file is its end, so hash it in one
    // call, without a hash object and without a second read.
    const first = readSync(fd, buffer, 0, CHUNK, null);
    if (first < CHUNK) return { digest: md5Once('md5', buffer.subarray(0, first), 'hex'), bytes: first };
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
  const [digests, errors, bytes] = hasher.hashFiles(Buffer.from(`${task.root}/`, 'latin1'), task.files);
  result.digests.push(...digests);
  for (const [index, errno] of errors) result.errors.push([index, errnoReason(errno)]);
  result.bytes += bytes;
}

function hashFilesCrypto(task: HashTask, result: HashResult): void {
  for (const path of task.files) {
    try {
      const { digest, bytes } = md5OfFile(absolute(task.root, path));
      result.digests.push(digest);
      result.bytes += bytes;
    } catch (error) {
      result.errors.push([result.digests.length, reason(error)]);
      result.digests.push(null);
    }
  }
}

/** MD5 of each file's content and of each symlink's target string (links are never followed). */
export function hash(task: HashTask): HashResult {
  const result: HashResult = { digests: [], errors: [], bytes: 0 };
  if (native) hashFilesNative(native, task, result);
  else hashFilesCrypto(task, result);
  for (const path of task.symlinks) {
    try {
      const target = readlinkSync(absolute(task.root, path), { encoding: 'buffer' });
      result.digests.push(createHash('md5').update(target).digest('hex'));
    } catch (error) {
      result.errors.push([result.digests.length, reason(error)]);
      result.digests.push(null);
    }
  }
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
      errors.push([index, reason(error)]);
    }
  });
  return { errors };
}
