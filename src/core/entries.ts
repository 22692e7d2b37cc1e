// The checks every restored entry passes before anything is written, whether it comes from a tar
// (the unpack task, workers/unpack.ts) or from a blob manifest (src/blobs/restore.ts): only the
// cache dirs and the meta files, no absolute paths or "..", no links out of the tree, through links
// or in chains, no devices or fifos, within the size and count limits.
import { DEFAULT_LIMITS, type ExtractLimits } from './config.js';
import { ArchiveError } from './errors.js';
import { META_DIR, META_FILES } from './meta.js';
import type { ArtifactEntry, ArtifactKind } from './plan.js';
import { ancestorsOf, bytePathFromText, isWithin, normalizeRelative, resolveLinkTarget } from './paths.js';

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
