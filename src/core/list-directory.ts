// Core's one file-system primitive: listing one directory synchronously, shared by the pool's
// threads (the walkHash task) and the main thread's walks (src/walk.ts).
import { readdirSync } from 'node:fs';
import { joinBytePath, type BytePath } from './paths.js';

export type EntryKind = 'file' | 'symlink' | 'dir' | 'other';

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
