import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { MessageChannel } from 'node:worker_threads';
import { compressor, decompressed } from './codec.js';
import type { Compression } from './core/config.js';
import { ARTIFACTS_FILE, MANIFEST_FILE, META_FILE, parseMeta, type ArchiveMeta } from './core/meta.js';
import { parseManifest, type Manifest } from './core/manifest.js';
import type { ArtifactEntry } from './core/plan.js';
import { tarPadding } from './core/ustar.js';
import { bytePathFromText, type BytePath } from './core/paths.js';
import { ArchiveError, NbcError } from './core/errors.js';
import type { WorkerPool } from './pool.js';
import { tarHeader } from './core/tar-header.js';
import type { UnpackOptions, Unpacked } from './core/entries.js';
import type { BlobPackTask, PackCounts, PackMessage, PackTask, UnpackMessage } from '../workers/types.js';

export { ARTIFACTS_FILE, MANIFEST_FILE, META_DIR, META_FILE } from './core/meta.js';

export type { PackCounts };

export interface PackEntry {
  path: BytePath;
  kind: 'file' | 'dir' | 'symlink';
  /** A symlink's target as listed: a link re-pointed since is left out. */
  target?: string;
}

const KIND_LETTERS = { file: 'f', dir: 'd', symlink: 'l' } as const;

export interface PackInput {
  /** Absolute path of the tree the entries are relative to. */
  root: string;
  /** The root's real path, as bytes: no file is read from anywhere else. */
  realRoot: Buffer;
  /** What to archive, sorted, each path valid UTF-8; directories are stored without their contents. */
  entries: readonly PackEntry[];
  /** Told, once packing ends, of the entries left out (unreadable, gone, or changed since listed) and why. */
  onSkipped?: (skipped: readonly [path: BytePath, reason: string][]) => void;
  /**
   * The archive's own files (path inside the archive → contents), made once the entries are packed,
   * from the counts, the MD5 of each packed file and the files that mention the root.
   */
  metaFiles: (counts: PackCounts, digests: Manifest, rooted: readonly BytePath[]) => ReadonlyMap<string, Buffer>;
  /** Where the packing runs; one thread is enough. */
  pool: WorkerPool;
  /** Seconds, for the meta files' headers. */
  created: number;
  signal?: AbortSignal;
}

export const END_OF_ARCHIVE = 1024;

/** A file entry of the archive's own (a meta file, or a blob in a pack): header, content, padding. */
export function tarFile(path: string, data: Buffer, mtime: number): Buffer {
  return Buffer.concat([tarHeader({ path, type: 'File', mode: 0o644, size: data.length, mtime }), data, Buffer.alloc(tarPadding(data.length))]);
}

/** The packing thread's last message: what it packed. */
export type PackEnd = Extract<PackMessage, { end: PackCounts }>;

/**
 * The bytes the packing thread posts (a tar of the entries, or with `blobs` a pack of new blobs),
 * then what `finish` makes of its last message. Memory stays at the chunks in flight (8 MiB), or
 * with `here` (packed on this thread) at the whole of what is packed.
 */
export async function* packedChunks(input: PackInput, finish: (end: PackEnd) => Buffer[] | Promise<Buffer[]>, blobs?: BlobPackTask,
  here = false): AsyncGenerator<Buffer> {
  const channel = new MessageChannel();
  const flow = new Int32Array(new SharedArrayBuffer(8));
  const task: PackTask = {
    root: bytePathFromText(input.root), realRoot: input.realRoot.toString('latin1'), entries: input.entries.map((e) => e.path),
    kinds: input.entries.map((e) => KIND_LETTERS[e.kind]).join(''), targets: input.entries.flatMap((e) => (e.kind === 'symlink' ? [e.target ?? ''] : [])),
    port: channel.port2, flow: flow.buffer as SharedArrayBuffer, ...(blobs ? { blobs } : {}),
  };
  // `here`: on this thread, whole before its first chunk is read (see PackTask.here).
  const packed = here ? import('../workers/tasks.js').then((tasks) => tasks.pack({ ...task, here: true })) : input.pool.pack(task);
  const queue: PackMessage[] = [];
  let wake: (() => void) | undefined;
  let failure: { error: unknown } | undefined;
  channel.port1.on('message', (message: PackMessage) => {
    queue.push(message);
    wake?.();
  });
  packed.catch((error: unknown) => {
    failure = { error };
    wake?.();
  });
  try {
    for (;;) {
      const message = queue.shift();
      if (message === undefined) {
        if (failure) throw failure.error;
        await new Promise<void>((resolve) => { wake = resolve; });
        wake = undefined;
      } else if ('end' in message) {
        if (message.skipped.length > 0) input.onSkipped?.(message.skipped);
        yield* await finish(message);
        return;
      } else {
        input.signal?.throwIfAborted();
        yield Buffer.from(message.chunk, 0, message.bytes);
        Atomics.add(flow, 0, 1);
        Atomics.notify(flow, 0);
      }
    }
  } finally {
    // Stops the packer if the reader gave up (an upload that failed, say).
    Atomics.store(flow, 1, 1);
    Atomics.notify(flow, 0);
    channel.port1.close();
    await packed.catch(() => {});
  }
}

/**
 * Streams the archive: the entries with portable headers (no owners, no atimes), packed on a pool
 * thread, then the meta files, then the end-of-archive blocks, through compression. The meta files
 * come last so that an archive cut short anywhere lacks them and is refused.
 */
export function packArchive(input: PackInput & { compression: Compression }): Readable {
  const tar = packedChunks(input, (message) => {
    const files = input.metaFiles(message.end, new Map(message.digests), message.rooted);
    return [Buffer.concat([...files].map(([path, data]) => tarFile(path, data, input.created))), Buffer.alloc(END_OF_ARCHIVE)];
  });
  const stream = Readable.from(tar, { objectMode: false });
  const compress = compressor(input.compression);
  return compress ? pipeline(stream, compress, () => {}) as unknown as Readable : stream;
}

export interface ExtractOptions extends UnpackOptions {
  /** Where the unpacking runs (one of its threads, for the whole archive). */
  pool: WorkerPool;
  signal?: AbortSignal;
}

export interface ExtractedArchive extends Unpacked {
  manifest: Buffer;
  /** MD5 of each artifact file when it was saved. */
  artifactDigests: Manifest;
  meta: ArchiveMeta;
  /** Blob layout only: each restored file's blob (its SHA-256), by which a save knows it unchanged. */
  blobs?: Map<BytePath, string>;
}

// Decompressed bytes go to the unpacking thread through a ring of 1 MiB slots of shared memory,
// reused rather than allocated per chunk: fresh 1 MiB buffers made unpacking a quarter slower.
const SLOT_SIZE = 1 << 20;
const SLOTS = 9;

/**
 * Unpacks an archive into `staging` while it downloads: this thread decompresses, a pool thread
 * parses, checks (core/entries.ts) and writes (workers/unpack.ts). Throws ArchiveError on the first
 * problem; the caller discards the staging dir.
 */
export async function extractArchive(source: AsyncIterable<Buffer>, options: ExtractOptions): Promise<ExtractedArchive> {
  const { pool, signal, ...unpackOptions } = options;
  const channel = new MessageChannel();
  const ring = new SharedArrayBuffer(SLOT_SIZE * SLOTS);
  // [messages posted, slots released, unpacker stopped]
  const flow = new Int32Array(new SharedArrayBuffer(12));
  const unpacked = pool.unpack({
    ...unpackOptions, port: channel.port2, ring, slotSize: SLOT_SIZE, flow: flow.buffer as SharedArrayBuffer,
  });
  // However the task ends (a problem found, a crashed thread), no wait for a slot outlives it.
  const stop = () => {
    Atomics.store(flow, 2, 1);
    Atomics.notify(flow, 1);
  };
  unpacked.then(stop, stop);
  const stopped = () => Atomics.load(flow, 2) !== 0;
  let posted = 0;
  let messages = 0;
  const post = (message: UnpackMessage) => {
    channel.port1.postMessage(message);
    if ('slot' in message) posted++;
    Atomics.store(flow, 0, ++messages);
    Atomics.notify(flow, 0);
  };
  /** The next slot, once the unpacker has released it; undefined when the unpacker stopped. */
  const nextSlot = async (): Promise<Buffer | undefined> => {
    for (let released; !stopped() && posted - (released = Atomics.load(flow, 1)) >= SLOTS;) {
      await Atomics.waitAsync(flow, 1, released).value;
    }
    return stopped() ? undefined : Buffer.from(ring, (posted % SLOTS) * SLOT_SIZE, SLOT_SIZE);
  };
  try {
    let slot: Buffer | undefined;
    let used = 0;
    // Errors of the source (a store, the network) and of decompression pass through as they are.
    filling: for await (const data of decompressed(source)) {
      signal?.throwIfAborted();
      for (let at = 0; at < data.length;) {
        // The unpacker stopped at a problem: its result says which.
        if (!(slot ??= await nextSlot())) break filling;
        const n = data.copy(slot, used, at);
        used += n;
        at += n;
        if (used === SLOT_SIZE) {
          post({ slot: posted % SLOTS, bytes: used });
          slot = undefined;
          used = 0;
        }
      }
    }
    if (slot && used > 0) post({ slot: posted % SLOTS, bytes: used });
    post({ end: true });
  } catch (error) {
    post({ cancel: true });
    await unpacked.catch(() => {});
    throw error;
  } finally {
    channel.port1.close();
  }
  const result = await unpacked;
  if ('archiveProblem' in result) throw new ArchiveError(result.archiveProblem.reason, result.archiveProblem.entry);
  if ('stagingProblem' in result) throw new NbcError('NBC_STAGING', result.stagingProblem);
  if ('cancelled' in result) throw new Error('unpacking was cancelled');
  return { ...result.unpacked, ...await readMeta(options.staging, result.unpacked.entries) };
}

/** The meta files unpacked into staging, checked against what was unpacked. */
export async function readMeta(staging: string, entries: readonly ArtifactEntry[]): Promise<Pick<ExtractedArchive, 'manifest' | 'artifactDigests' | 'meta'>> {
  let manifest: Buffer;
  let artifacts: Buffer;
  let json: unknown;
  try {
    manifest = await readFile(join(staging, MANIFEST_FILE));
    artifacts = await readFile(join(staging, ARTIFACTS_FILE));
    json = JSON.parse(await readFile(join(staging, META_FILE), 'utf8'));
  } catch {
    throw new ArchiveError(`not a nix-build-cache archive (no readable ${MANIFEST_FILE}, ${ARTIFACTS_FILE} and ${META_FILE})`);
  }
  const artifactDigests = parseManifest(artifacts);
  if (artifactDigests.problems.length > 0) throw new ArchiveError(`bad artifact digests, ${artifactDigests.problems[0]}`, ARTIFACTS_FILE);
  const parsed = parseMeta(json);
  if ('problem' in parsed) throw new ArchiveError(parsed.problem, META_FILE);
  const files = entries.filter((entry) => entry.kind !== 'dir').length;
  if (parsed.meta.files !== files) throw new ArchiveError(`truncated archive: ${files} of ${parsed.meta.files} files`);
  return { manifest, artifactDigests: artifactDigests.manifest, meta: parsed.meta };
}
