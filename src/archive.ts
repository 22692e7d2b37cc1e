import { chmodSync, closeSync, constants, linkSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { MessageChannel } from 'node:worker_threads';
import { Header, Parser, type ReadEntry } from 'tar';
import { compressor, decompressed } from './codec.js';
import { DEFAULT_LIMITS, type Compression, type ExtractLimits } from './core/config.js';
import { parseMeta, type ArchiveMeta } from './core/meta.js';
import type { ArtifactEntry, ArtifactKind } from './core/plan.js';
import {
  ancestorsOf, bytePathFromText, isWithin, normalizeRelative, parentOf, resolveLinkTarget, type BytePath,
} from './core/paths.js';
import { ArchiveError, describeError, NbcError } from './errors.js';
import type { WorkerPool } from './pool.js';
import type { PackCounts, PackMessage } from '../workers/types.js';

/** The archive's own files, stored last, under a directory no cache dir may use. */
export const META_DIR = '.cache-meta';
export const MANIFEST_FILE = `${META_DIR}/MD5SUMS`;
export const META_FILE = `${META_DIR}/meta.json`;

export type { PackCounts };

export interface PackInput {
  /** Absolute path of the tree the entries are relative to. */
  root: string;
  /** Byte paths to archive, sorted, each valid UTF-8; directories are stored without their contents. */
  entries: readonly BytePath[];
  /** The archive's own files (path inside the archive → contents), made once the entries are packed. */
  metaFiles: (counts: PackCounts) => ReadonlyMap<string, Buffer>;
  compression: Compression;
  /** Where the packing runs; one thread is enough. */
  pool: WorkerPool;
  /** Seconds, for the meta files' headers. */
  created: number;
  signal?: AbortSignal;
}

const END_OF_ARCHIVE = 1024;

function tarFile(path: string, data: Buffer, mtime: number): Buffer {
  const header = new Header({ path, mode: 0o644, size: data.length, mtime: new Date(mtime * 1000), type: 'File' });
  const block = Buffer.alloc(512);
  header.encode(block, 0);
  const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([block, data, padding]);
}

/**
 * Streams the archive: the entries with portable headers (no owners, no atimes), packed on a pool
 * thread, then the meta files, then the end-of-archive blocks, through compression. The meta files
 * come last so that an archive cut short anywhere lacks them and is refused. Memory stays at the
 * chunks in flight (8 MiB) and the streams' buffers.
 */
export function packArchive(input: PackInput): Readable {
  const channel = new MessageChannel();
  const flow = new Int32Array(new SharedArrayBuffer(8));
  const packed = input.pool.pack({ root: input.root, entries: [...input.entries], port: channel.port2, flow: flow.buffer as SharedArrayBuffer });
  async function* tar(): AsyncGenerator<Buffer> {
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
          yield Buffer.concat([...input.metaFiles(message.end)].map(([path, data]) => tarFile(path, data, input.created)));
          yield Buffer.alloc(END_OF_ARCHIVE);
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
  const stream = Readable.from(tar(), { objectMode: false });
  const compress = compressor(input.compression);
  return compress ? pipeline(stream, compress, () => {}) as unknown as Readable : stream;
}

export interface ExtractOptions {
  /** An empty directory to unpack into, on the tree's file system. */
  staging: string;
  cacheDirs: readonly string[];
  limits?: ExtractLimits;
  /** Symlinks of the source tree (text paths): no archive symlink may lead through them. */
  treeSymlinks?: ReadonlySet<string>;
  signal?: AbortSignal;
}

export interface ExtractedArchive {
  /** Everything below the cache dirs, with the kinds and times the archive recorded. */
  entries: ArtifactEntry[];
  manifest: Buffer;
  meta: ArchiveMeta;
  /** Bytes of file content unpacked. */
  bytes: number;
  /** Things done to make the archive safe that the user should hear of. */
  warnings: string[];
}

const KINDS: Partial<Record<string, ArtifactKind>> = {
  File: 'file', OldFile: 'file', ContiguousFile: 'file', Link: 'file', Directory: 'dir', SymbolicLink: 'symlink',
};

/** Checks each entry before anything is written; the first problem rejects the whole archive. */
class EntryChecker {
  readonly entries: ArtifactEntry[] = [];
  /** Entries whose setuid, setgid or sticky bits were dropped. */
  readonly droppedBits: string[] = [];
  problem: ArchiveError | undefined;
  bytes = 0;
  readonly #seen = new Map<string, ArtifactKind>();
  /** Symlink path → target, for the archive's links. */
  readonly #links = new Map<string, string>();
  readonly #options: ExtractOptions;
  readonly #limits: ExtractLimits;

  constructor(options: ExtractOptions) {
    this.#options = options;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
  }

  admit(entry: ReadEntry): boolean {
    if (this.problem) return false;
    const reason = this.#check(entry);
    if (reason === undefined) return true;
    this.problem = new ArchiveError(reason, entry.path);
    return false;
  }

  /**
   * Checks what needs the whole archive: a symlink's target may not pass through another symlink
   * (of the archive or the tree) on its way, or its lexical check above would not hold. A link to a
   * link (libfoo.so → libfoo.so.1) is fine: each one was checked itself.
   */
  finish(): void {
    if (this.problem) return;
    const isLink = (path: string) => this.#links.has(path) || (this.#options.treeSymlinks?.has(path) ?? false);
    for (const [path, target] of this.#links) {
      const through = traversedBy(path, target).find(isLink);
      if (through !== undefined) {
        this.problem = new ArchiveError(`symlink to ${target} leads through the symlink ${through}`, path);
        return;
      }
    }
  }

  #allowed(path: string): boolean {
    if (path === META_DIR || path === MANIFEST_FILE || path === META_FILE) return true;
    return !isWithin(path, META_DIR) && this.#options.cacheDirs.some((dir) => isWithin(path, dir));
  }

  #check(entry: ReadEntry): string | undefined {
    const kind = KINDS[entry.type];
    if (kind === undefined) return `entries of type ${entry.type} are not allowed`;
    const path = normalizeRelative(entry.path);
    if (path === undefined) return 'absolute path or ".." in the path';
    if (path === '.' || !this.#allowed(path)) return 'outside the cache dirs';
    if (ancestorsOf(path).some((dir) => this.#links.has(dir) || (this.#seen.has(dir) && this.#seen.get(dir) !== 'dir'))) {
      return 'inside a path that the archive made a symlink or a file';
    }
    const before = this.#seen.get(path);
    if (before !== undefined && !(before === 'dir' && kind === 'dir')) return 'appears twice in the archive';
    if (this.#seen.size >= this.#limits.maxEntries) return `more than ${this.#limits.maxEntries} entries (see --max-entries)`;
    this.bytes += entry.size ?? 0;
    if (this.bytes > this.#limits.maxBytes) return `unpacks to more than ${this.#limits.maxBytes} bytes (see --max-unpacked)`;
    if (entry.type === 'SymbolicLink' && resolveLinkTarget(path, entry.linkpath ?? '') === undefined) {
      return `symlink to ${entry.linkpath} points outside the tree`;
    }
    if (entry.type === 'Link') {
      const target = normalizeRelative(entry.linkpath ?? '');
      if (target === undefined || this.#seen.get(target) !== 'file' || isWithin(target, META_DIR)) {
        return `hard link to ${entry.linkpath}, which is not a file earlier in the archive`;
      }
    }
    this.#seen.set(path, kind);
    if (kind === 'symlink') this.#links.set(path, entry.linkpath ?? '');
    // Permissions beyond rwx (setuid, setgid, sticky) are never restored.
    const mode = entry.mode ?? 0o644;
    if (mode & 0o7000 && kind !== 'symlink') this.droppedBits.push(path);
    entry.mode = mode & 0o777;
    if (!isWithin(path, META_DIR)) {
      this.entries.push({
        path: bytePathFromText(path), kind, mtime: Math.floor((entry.mtime?.getTime() ?? 0) / 1000), size: entry.size ?? 0,
      });
    }
    return undefined;
  }
}

/** The directories a symlink's target walks through (every step but the last), tree-relative. */
function traversedBy(linkPath: string, target: string): string[] {
  const parts = linkPath.split('/').slice(0, -1);
  const steps = target.split('/').filter((part) => part !== '' && part !== '.');
  const traversed: string[] = [];
  steps.forEach((step, index) => {
    if (step === '..') parts.pop();
    else {
      parts.push(step);
      if (index < steps.length - 1) traversed.push(parts.join('/'));
    }
  });
  return traversed;
}

/**
 * Writes admitted entries into staging. node-tar parses; this writes, remembering the directories
 * it made: node-tar 7's unpacker creates every parent of every file again from the top (about ten
 * failing mkdir calls per file), which made unpacking small files several times slower than GNU tar.
 * Staging is private and every entry was checked, so plain exclusive, no-follow writes suffice.
 */
class StagingWriter {
  readonly #root: string;
  readonly #dirs = new Set<string>(['.']);
  #open: number | undefined;

  constructor(root: string) {
    this.#root = root;
  }

  #dir(path: string): void {
    if (this.#dirs.has(path)) return;
    this.#dir(parentOf(path));
    try {
      mkdirSync(join(this.#root, path), 0o755);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    this.#dirs.add(path);
  }

  write(entry: ReadEntry): void {
    const path = normalizeRelative(entry.path)!;
    const target = join(this.#root, path);
    this.#dir(parentOf(path));
    switch (entry.type) {
      case 'Directory':
        this.#dir(path);
        chmodSync(target, (entry.mode ?? 0o755) | 0o700);
        break;
      case 'SymbolicLink':
        symlinkSync(entry.linkpath!, target);
        break;
      case 'Link':
        linkSync(join(this.#root, normalizeRelative(entry.linkpath!)!), target);
        break;
      default: {
        const fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, entry.mode ?? 0o644);
        this.#open = fd;
        entry.on('data', (chunk: Buffer) => writeSync(fd, chunk));
        entry.on('end', () => {
          this.#open = undefined;
          closeSync(fd);
        });
        return;
      }
    }
    entry.resume();
  }

  /** Closes a file left open by a failure half-way through an entry. */
  close(): void {
    if (this.#open !== undefined) closeSync(this.#open);
    this.#open = undefined;
  }
}

/**
 * Unpacks an archive into `staging`, checking every entry first: only the cache dirs and the meta
 * files, no absolute paths or "..", no links out of the tree, through links or in chains, no devices
 * or fifos, within the size and count limits. Throws ArchiveError on the first problem; the caller
 * discards the staging dir.
 */
export async function extractArchive(source: AsyncIterable<Buffer>, options: ExtractOptions): Promise<ExtractedArchive> {
  const checker = new EntryChecker(options);
  const writer = new StagingWriter(options.staging);
  let failure: unknown;
  const parser = new Parser({ strict: true, filter: (_path, entry) => checker.admit(entry as ReadEntry) });
  parser.on('entry', (entry: ReadEntry) => writer.write(entry));
  parser.on('error', (error: unknown) => { failure ??= error; });
  const fail = (error: unknown): never => {
    if (error instanceof ArchiveError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code && !code.startsWith('TAR_')) {
      throw new NbcError('NBC_STAGING', `cannot unpack into the staging dir (${describeError(error)})`, { cause: error });
    }
    throw new ArchiveError(`damaged archive (${(error as Error).message})`, undefined, { cause: error });
  };
  const write = (chunk?: Buffer) => {
    try {
      if (chunk) parser.write(chunk);
      else parser.end();
    } catch (error) {
      fail(error);
    }
    if (checker.problem) throw checker.problem;
    if (failure) fail(failure);
  };
  try {
    // Errors of the source (a store, the network) and of decompression pass through as they are.
    for await (const chunk of decompressed(source)) {
      options.signal?.throwIfAborted();
      write(chunk);
    }
    write();
  } finally {
    writer.close();
  }
  checker.finish();
  if (checker.problem) throw checker.problem;
  const warnings = checker.droppedBits.length === 0 ? []
    : [`dropped setuid, setgid or sticky bits from ${checker.droppedBits.length} entries, e.g. ${checker.droppedBits[0]}`];
  return { entries: checker.entries, bytes: checker.bytes, warnings, ...await readMeta(options.staging, checker.entries) };
}

async function readMeta(staging: string, entries: readonly ArtifactEntry[]) {
  let manifest: Buffer;
  let json: unknown;
  try {
    manifest = await readFile(join(staging, MANIFEST_FILE));
    json = JSON.parse(await readFile(join(staging, META_FILE), 'utf8'));
  } catch {
    throw new ArchiveError(`not a nix-build-cache archive (no readable ${MANIFEST_FILE} and ${META_FILE})`);
  }
  const parsed = parseMeta(json);
  if ('problem' in parsed) throw new ArchiveError(parsed.problem, META_FILE);
  const files = entries.filter((entry) => entry.kind !== 'dir').length;
  if (parsed.meta.files !== files) throw new ArchiveError(`truncated archive: ${files} of ${parsed.meta.files} files`);
  return { manifest, meta: parsed.meta };
}
