/** The messages between the main thread and the worker pool; paths are byte paths (latin1). */
import type { MessagePort } from 'node:worker_threads';
import type { BlobEntry } from '../src/core/blobs.js';
import type { UnpackOptions, Unpacked } from '../src/core/entries.js';

export interface HashTask {
  /** Absolute path of the tree's root, as a byte path. */
  root: string;
  files: string[];
  symlinks: string[];
}

/** The SIMD hasher (src/native/md5.c, workers/hasher.ts), or node:crypto. */
export type HasherName = 'simd' | 'crypto';

/** One digest per file, then one per symlink, in task order; null where the file could not be read. */
export interface HashResult {
  /** Which hasher made the digests. */
  hasher: HasherName;
  digests: (string | null)[];
  /** Why each null digest is null, as [index, "CODE: message"]. */
  errors: [number, string][];
  bytes: number;
}

/**
 * Lists `dirs` (byte paths below `root`) and hashes the files found, until `budget` bytes are
 * hashed; the files left over come back in `pending` for other tasks.
 */
export interface WalkHashTask {
  root: string;
  dirs: string[];
  budget: number;
}

export interface WalkHashResult {
  subdirs: string[];
  /** Neither file, directory nor symlink: fifos, sockets, devices. */
  others: string[];
  /** [dir, "CODE: message"] for each directory that could not be listed. */
  unreadable: [string, string][];
  /** Files found but not hashed (too few to hash alone, or the budget ran out). */
  pending: string[];
  /** What was hashed: the digests are in `hashed`, files first, then symlinks. */
  files: string[];
  symlinks: string[];
  hashed: HashResult;
}

export interface SetTimesTask {
  root: string;
  paths: string[];
  /** Seconds since the epoch, one per path. */
  mtimes: number[];
}

export interface SetTimesResult {
  /** [index, "CODE: message"] for every path whose time could not be set. */
  errors: [number, string][];
}

/**
 * Packs `entries` (byte paths below `root`, sorted, parents first) as tar entries, posting the
 * bytes on `port` in chunks. Flow control: `flow` is two Int32 cells, [chunks the reader has
 * consumed, cancelled]; the packer waits while too many chunks are unconsumed.
 */
export interface PackTask {
  root: string;
  /** The root's real path (latin1): an entry is packed only when its directory resolves to that path below it. */
  realRoot: string;
  entries: string[];
  /** The kind each entry was listed as, one letter each (f, d, l): one found changed is left out. */
  kinds: string;
  /** Each symlink's target as checked when listed, in entry order: a link re-pointed since is left out. */
  targets: string[];
  port: MessagePort;
  flow: SharedArrayBuffer;
  /** The blob layout: the bytes posted are a pack of the new blobs, and `end` says what the entries are. */
  blobs?: BlobPackTask;
  /**
   * Run on the reader's own thread (a small blob save): never wait for the reader, which cannot read
   * until the task returns; the caller keeps what is packed small.
   */
  here?: true;
}

/** A blob the pack task packed: where its bytes start, its size, and theirs when they are a zstd frame. */
export type PackedBlob = [id: string, offset: number, size: number, stored?: number, frameHash?: string];

export interface BlobPackTask {
  /** Blobs the store holds: named, never packed again. */
  known: string[];
  /** The local blob cache, where new blobs are also written; undefined when there is none. */
  cacheDir: string | undefined;
}


/**
 * Posted on the task's port: a chunk of tar, then once `end` with what was packed: the counts, each
 * file's MD5, the files whose content mentions `root` (what a restore elsewhere must rewrite) and
 * the entries left out (unreadable, gone or changed since they were listed) with why.
 */
export type PackMessage = { chunk: ArrayBuffer; bytes: number }
  | {
    end: PackCounts; digests: [string, string][]; rooted: string[]; skipped: [path: string, reason: string][];
    /** The blob layout: the entries (and the task's index of each), and where in the bytes posted each new blob's content starts. */
    packed?: { entries: BlobEntry[]; indexes: number[]; blobs: PackedBlob[]; bytes: number };
  };

export interface PackCounts {
  files: number;
  dirs: number;
  /** Bytes of file content. */
  bytes: number;
}

/**
 * Unpacks the tar bytes posted on `port` into staging (see workers/unpack.ts). The bytes are in `ring`,
 * slots of `slotSize` bytes used in turn; a message says which slot holds how many. `flow` is three
 * Int32 cells: [messages posted, slots released, unpacker stopped (set by the poster when the task
 * ends)]. The poster fills a slot only once it is released, and stops posting once the task ended.
 */
export interface UnpackTask extends UnpackOptions {
  port: MessagePort;
  ring: SharedArrayBuffer;
  slotSize: number;
  flow: SharedArrayBuffer;
}

/** Posted on the task's port: filled slots, then `end` (or `cancel` when the download failed). */
export type UnpackMessage = { slot: number; bytes: number } | { end: true } | { cancel: true };

export type UnpackResult =
  | { unpacked: Unpacked }
  | { archiveProblem: { reason: string; entry?: string } }
  | { stagingProblem: string }
  | { cancelled: true };

/** A blob to write into staging, and the files (checked paths below staging, modes) it becomes. */
export interface MaterializeBlob {
  id: string;
  size: number;
  /** Where its bytes start in the task's `data`. */
  offset: number;
  /** Their length when they are a zstd frame of the blob, and the frame's hash where known (see BlobLocation). */
  stored?: number;
  frameHash?: string;
  /** The local cache holds a zstd frame of it (`<hash>.zst`), not its content. */
  cachedFrame?: boolean;
  files: [path: string, mode: number][];
}

/**
 * One step of a blob-layout restore (src/blobs/restore.ts, workers/materialize.ts), in this order:
 * make `dirs` (parents first; a listed directory gets its mode), write `blobs` (from `data`, shared
 * memory holding a fetched run of a pack, each checked against its hash and kept in `cacheDir` when given;
 * without `data`, read from the local blob cache `cacheDir` and checked), then make `links`
 * (hard links 'h' to earlier files, then symlinks 'l').
 */
export interface MaterializeTask {
  staging: string;
  dirs?: [path: string, mode: number | null][];
  blobs?: MaterializeBlob[];
  data?: SharedArrayBuffer;
  cacheDir?: string;
  links?: [path: string, type: 'h' | 'l', target: string][];
}

/**
 * Done: the bytes written, and the blobs the local cache lacked or held damaged (removed from it;
 * the caller fetches them). Or the first fetched blob that does not match its hash, or why staging
 * could not be written.
 */
export type MaterializeResult =
  | { bytes: number; refetch: string[] }
  | { mismatch: string }
  | { stagingProblem: string };

/**
 * Posted on the parent port by each thread once this module has loaded. Piscina loads it with
 * require(), and on Node 20 terminating a thread inside that require() aborts the whole process
 * ("IsGraphAsync must be used on an instantiated module"), so the pool terminates only loaded threads.
 */
export interface LoadedMessage {
  loadedThread: number;
}
