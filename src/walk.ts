import { readdirSync } from 'node:fs';
import { joinBytePath, type BytePath } from './core/paths.js';
import { describeError } from './errors.js';

export type EntryKind = 'file' | 'symlink' | 'dir' | 'other';

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
}

/** Absolute file-system path of a byte path below a root. */
export function absolutePath(root: Buffer, path: BytePath): Buffer {
  return path === '.' ? root : Buffer.concat([root, Buffer.from(`/${path}`, 'latin1')]);
}

/**
 * Hands each entry of one directory (a byte path below `root`) to `onEntry`, in the order the file
 * system lists them, without an object per entry (the hashing threads list every directory of the
 * tree); throws what readdir throws.
 */
export function listDirectory(root: Buffer, dir: BytePath, onEntry: (path: BytePath, kind: EntryKind) => void): void {
  // Synchronous on purpose: an async readdir's round trip through libuv's thread pool costs more
  // than the call itself, and trees of many small directories are walked 3-5× faster. Names
  // decoded as latin1 are byte paths already, without a Buffer per name.
  for (const dirent of readdirSync(absolutePath(root, dir), { withFileTypes: true, encoding: 'latin1' })) {
    onEntry(joinBytePath(dir, dirent.name),
      dirent.isFile() ? 'file' : dirent.isDirectory() ? 'dir' : dirent.isSymbolicLink() ? 'symlink' : 'other');
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
      listDirectory(root, dir, (path, kind) => entries.push({ path, kind }));
    } catch (error) {
      options.onProblem?.(`cannot read directory ${dir}: ${describeError(error)}`);
      continue;
    }
    const kept = options.skip ? entries.filter((entry) => entry.kind !== 'dir' || !options.skip!.has(entry.path)) : entries;
    for (const entry of kept) if (entry.kind === 'dir') pending.push(entry.path);
    yield kept;
  }
}
