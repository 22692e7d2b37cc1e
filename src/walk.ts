import { closeSync, constants, openSync, readlinkSync } from 'node:fs';
import { absolutePath, listDirectory, type EntryKind } from './core/list-directory.js';
import { joinBytePath, type BytePath } from './core/paths.js';
import { describeError } from './core/errors.js';

export interface WalkEntry {
  path: BytePath;
  kind: EntryKind;
}

export interface WalkOptions {
  /** Directory to walk, relative to the root. Default ".". */
  start?: BytePath;
  /** Directories (byte paths relative to the root) not to enter, such as the tool's state dir. */
  skip?: ReadonlySet<BytePath>;
  signal?: AbortSignal;
  /** Told about each directory that could not be read; the walk goes on without it. */
  onProblem?: (problem: string) => void;
  /** Whether to list a directory found on the way (default: every one not in `skip`). */
  enter?: (path: BytePath) => boolean;
  /**
   * The root's real path (as bytes): each directory is then opened without following a symlink
   * and listed only when it is that path below the root, so that a directory swapped for a link
   * after its parent was listed cannot lead the walk out of the tree.
   */
  confineTo?: Buffer;
}

/** Where an open file descriptor leads, as bytes; undefined without /proc. */
export function pathOfDescriptor(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`, 'latin1');
  } catch {
    return undefined;
  }
}

/** Lists a directory that must be `dir` below the real root `realRoot`, never following a link to get there. */
function listConfined(root: Buffer, realRoot: Buffer, dir: BytePath, onEntry: (path: BytePath, kind: EntryKind) => void): void {
  const fd = openSync(absolutePath(root, dir), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const at = pathOfDescriptor(fd);
    if (at === undefined) {
      listDirectory(root, dir, onEntry);
      return;
    }
    if (at !== absolutePath(realRoot, dir).toString('latin1')) throw new Error(`leads out of the tree (to ${at})`);
    // The descriptor's /proc path lists the very directory that was checked.
    listDirectory(Buffer.from(`/proc/self/fd/${fd}`), '.', (path, kind) => onEntry(joinBytePath(dir, path), kind));
  } finally {
    closeSync(fd);
  }
}

/**
 * Walks a tree depth-first, yielding each directory's entries in the order the file system lists
 * them (callers sort what they keep). Symlinks are reported, never followed. `root` is the
 * absolute path as bytes.
 */
export async function* walkTree(root: Buffer, options: WalkOptions = {}): AsyncGenerator<WalkEntry[]> {
  const pending: BytePath[] = [options.start ?? '.'];
  while (pending.length > 0) {
    options.signal?.throwIfAborted();
    const dir = pending.pop()!;
    const entries: WalkEntry[] = [];
    try {
      const onEntry = (path: BytePath, kind: EntryKind) => entries.push({ path, kind });
      if (options.confineTo) listConfined(root, options.confineTo, dir, onEntry);
      else listDirectory(root, dir, onEntry);
    } catch (error) {
      options.onProblem?.(`cannot read directory ${dir}: ${describeError(error)}`);
      continue;
    }
    const kept = options.skip ? entries.filter((entry) => entry.kind !== 'dir' || !options.skip!.has(entry.path)) : entries;
    for (const entry of kept) if (entry.kind === 'dir' && (options.enter?.(entry.path) ?? true)) pending.push(entry.path);
    yield kept;
  }
}
