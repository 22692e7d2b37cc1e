// The unpack task: tar bytes into staging, synchronously, on a pool thread. node-tar parses, every
// entry passes core/entries.ts's checks before anything is written, and files are written with
// plain sync calls. The main thread meanwhile downloads and decompresses (src/archive.ts).
import { chmodSync, closeSync, constants, linkSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { receiveMessageOnPort } from 'node:worker_threads';
import { Parser, type ReadEntry } from 'tar';
import { EntryChecker, type UnpackOptions, type Unpacked } from '../src/core/entries.js';
import { ArchiveError, describeError, NbcError } from '../src/core/errors.js';
import { normalizeRelative, parentOf } from '../src/core/paths.js';
import type { UnpackMessage, UnpackResult, UnpackTask } from './types.js';

/**
 * Bytes allowed after the tar's end (our archives have none; other tars pad to a record, 10 KiB),
 * and slack before it. Beyond this the archive is refused: decompression stops here.
 */
const TRAILING_LIMIT = 1 << 20;
/** Tar bytes each entry may take besides its content: header, padding, a PAX header for a long name. */
const ENTRY_OVERHEAD = 16 << 10;

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

  /** Where a checked (normalised, relative) path goes: no need for join()'s normalising. */
  #at(path: string): string {
    return `${this.#root}/${path}`;
  }

  #dir(path: string): void {
    if (this.#dirs.has(path)) return;
    this.#dir(parentOf(path));
    try {
      mkdirSync(this.#at(path), 0o755);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    this.#dirs.add(path);
  }

  write(entry: ReadEntry): void {
    const path = normalizeRelative(entry.path)!;
    const target = this.#at(path);
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
        linkSync(this.#at(normalizeRelative(entry.linkpath!)!), target);
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
 * Unpacks tar bytes into `options.staging`, checking every entry first: only the cache dirs and
 * the meta files, no absolute paths or "..", no links out of the tree, through links or in chains,
 * no devices or fifos, within the size and count limits. `write` and `end` throw ArchiveError on
 * the first problem; the caller discards the staging dir.
 */
class Unpacker {
  readonly #checker: EntryChecker;
  readonly #writer: StagingWriter;
  readonly #parser: Parser;
  #failure: unknown;
  /** Tar bytes written to the parser. */
  #written = 0;
  /** Bytes that came after the chunk holding the tar's end; undefined before the end. */
  #afterEnd: number | undefined;
  #sawEnd = false;

  constructor(options: UnpackOptions) {
    this.#checker = new EntryChecker(options);
    this.#writer = new StagingWriter(options.staging);
    this.#parser = new Parser({ strict: true, filter: (_path, entry) => this.#checker.admit(entry as ReadEntry) });
    this.#parser.on('entry', (entry: ReadEntry) => this.#writer.write(entry));
    this.#parser.on('error', (error: unknown) => { this.#failure ??= error; });
    // Two zero blocks: node-tar reads nothing more, but would keep every later byte in one growing buffer.
    this.#parser.on('eof', () => { this.#sawEnd = true; });
  }

  /**
   * Feeds tar bytes. After the tar's end nothing reaches the parser; more than TRAILING_LIMIT
   * bytes there (a bomb of compressed frames appended, say) refuse the archive. Before it, the
   * bytes must be accounted for by the entries admitted: content plus ENTRY_OVERHEAD each.
   */
  write(chunk: Buffer): void {
    if (this.#afterEnd !== undefined) {
      this.#afterEnd += chunk.length;
      if (this.#afterEnd > TRAILING_LIMIT) {
        throw new ArchiveError(`more than ${TRAILING_LIMIT} bytes of data after the end of the tar archive`);
      }
      return;
    }
    this.#step(() => this.#parser.write(chunk));
    this.#written += chunk.length;
    if (this.#sawEnd) {
      this.#afterEnd = 0;
      return;
    }
    const accounted = this.#checker.bytes + (this.#checker.admitted + 1) * ENTRY_OVERHEAD + TRAILING_LIMIT;
    if (this.#written > accounted) {
      throw new ArchiveError(`the tar stream holds ${this.#written - accounted} bytes more than its entries account for`);
    }
  }

  /** The archive's end: the checks that need all of it, then what was unpacked. */
  end(): Unpacked {
    this.#step(() => this.#parser.end());
    this.#writer.close();
    const checker = this.#checker;
    checker.finish();
    if (checker.problem) throw checker.problem;
    return { entries: checker.entries, bytes: checker.bytes, warnings: checker.warnings() };
  }

  /** Closes a file left open by a failure half-way through an entry. */
  close(): void {
    this.#writer.close();
  }

  #step(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.#fail(error);
    }
    if (this.#checker.problem) throw this.#checker.problem;
    if (this.#failure) this.#fail(this.#failure);
  }

  #fail(error: unknown): never {
    if (error instanceof ArchiveError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code && !code.startsWith('TAR_')) {
      throw new NbcError('NBC_STAGING', `cannot unpack into the staging dir (${describeError(error)})`, { cause: error });
    }
    throw new ArchiveError(`damaged archive (${(error as Error).message})`, undefined, { cause: error });
  }
}

/**
 * Unpacks the slots posted on the task's port as they come, synchronously (see UnpackTask for the
 * flow control). Problems come back as results: an error thrown here would lose its class.
 */
export function unpack(task: UnpackTask): UnpackResult {
  const flow = new Int32Array(task.flow);
  const ring = Buffer.from(task.ring);
  const unpacker = new Unpacker(task);
  try {
    for (let received = 0, taken = 0; ; received++) {
      let next;
      while ((next = receiveMessageOnPort(task.port)) === undefined) Atomics.wait(flow, 0, received);
      const message = next.message as UnpackMessage;
      if ('cancel' in message) return { cancelled: true };
      if ('end' in message) return { unpacked: unpacker.end() };
      const start = message.slot * task.slotSize;
      unpacker.write(ring.subarray(start, start + message.bytes));
      // node-tar keeps the last partial block of a chunk (a view) until the next one comes, so a
      // slot is released only once the chunk after it is written.
      Atomics.store(flow, 1, taken++);
      Atomics.notify(flow, 1);
    }
  } catch (error) {
    if (error instanceof ArchiveError) return { archiveProblem: { reason: error.reason, ...(error.entry === undefined ? {} : { entry: error.entry }) } };
    if (error instanceof NbcError) return { stagingProblem: error.message };
    throw error;
  } finally {
    unpacker.close();
  }
}
