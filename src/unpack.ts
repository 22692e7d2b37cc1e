// Unpacking into staging, synchronously, on a pool thread (workers/tasks.ts): node-tar parses,
// every entry is checked before anything is written, and files are written with plain sync calls.
// The main thread meanwhile downloads and decompresses (archive.ts, extractArchive).
import { chmodSync, closeSync, constants, linkSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { Parser, type ReadEntry } from 'tar';
import { DEFAULT_LIMITS, type ExtractLimits } from './core/config.js';
import { META_DIR, META_FILES } from './core/meta.js';
import type { ArtifactEntry, ArtifactKind } from './core/plan.js';
import {
  ancestorsOf, bytePathFromText, isWithin, normalizeRelative, parentOf, resolveLinkTarget,
} from './core/paths.js';
import { ArchiveError, describeError, NbcError } from './core/errors.js';

export interface UnpackOptions {
  /** An empty directory to unpack into, on the tree's file system. */
  staging: string;
  cacheDirs: readonly string[];
  limits?: ExtractLimits;
  /** Symlinks of the source tree (text paths): no archive symlink may lead through them. */
  treeSymlinks?: ReadonlySet<string>;
}

export interface Unpacked {
  /** Everything below the cache dirs, with the kinds and times the archive recorded. */
  entries: ArtifactEntry[];
  /** Bytes of file content unpacked. */
  bytes: number;
  /** Things done to make the archive safe that the user should hear of. */
  warnings: string[];
}

/**
 * Bytes allowed after the tar's end (our archives have none; other tars pad to a record, 10 KiB),
 * and slack before it. Beyond this the archive is refused: decompression stops here.
 */
export const TRAILING_LIMIT = 1 << 20;
/** Tar bytes each entry may take besides its content: header, padding, a PAX header for a long name. */
const ENTRY_OVERHEAD = 16 << 10;

const KINDS: Partial<Record<string, ArtifactKind>> = {
  File: 'file', OldFile: 'file', ContiguousFile: 'file', Link: 'file', Directory: 'dir', SymbolicLink: 'symlink',
};

/** What the checks read of an entry: a node-tar ReadEntry, or an entry of a blob manifest. */
export interface CheckedEntry {
  type: string;
  path: string;
  size?: number | undefined;
  /** Set to the mode to restore (setuid, setgid and sticky bits dropped). */
  mode?: number | undefined;
  mtime?: Date | undefined;
  linkpath?: string | undefined;
}

/**
 * Checks each entry before anything is written; the first problem rejects the whole archive. The
 * blob layout (src/blobs/restore.ts) runs its manifest's entries through it too.
 */
export class EntryChecker {
  readonly entries: ArtifactEntry[] = [];
  /** Entries whose setuid, setgid or sticky bits were dropped. */
  readonly droppedBits: string[] = [];
  problem: ArchiveError | undefined;
  bytes = 0;
  /** Entries admitted so far. */
  admitted = 0;
  readonly #seen = new Map<string, ArtifactKind>();
  /** Symlink path → target, for the archive's links. */
  readonly #links = new Map<string, string>();
  readonly #options: UnpackOptions;
  readonly #limits: ExtractLimits;

  constructor(options: UnpackOptions) {
    this.#options = options;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
  }

  admit(entry: CheckedEntry): boolean {
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

  /** What the user should hear of: the dropped bits. */
  warnings(): string[] {
    return this.droppedBits.length === 0 ? []
      : [`dropped setuid, setgid or sticky bits from ${this.droppedBits.length} entries, e.g. ${this.droppedBits[0]}`];
  }

  #allowed(path: string): boolean {
    if (path === META_DIR || (META_FILES as readonly string[]).includes(path)) return true;
    return !isWithin(path, META_DIR) && this.#options.cacheDirs.some((dir) => isWithin(path, dir));
  }

  #check(entry: CheckedEntry): string | undefined {
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
    this.admitted++;
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
export function traversedBy(linkPath: string, target: string): string[] {
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
export class Unpacker {
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
