// What save may archive: the cache dirs that are real directories inside the tree, and below them
// only entries that restore accepts (src/core/entries.ts), so that a saved archive always restores.
import { lstat, readlink, realpath } from 'node:fs/promises';
import { META_DIR } from './core/meta.js';
import { bytePathFromText, isTextPath, resolveLinkTarget, textFromBytePath, type BytePath } from './core/paths.js';
import { describeError } from './core/errors.js';
import { traversedBy } from './core/entries.js';
import { absolutePath, type EntryKind } from './core/list-directory.js';
import { walkTree } from './walk.js';

export interface ArtifactEntry {
  path: BytePath;
  kind: Exclude<EntryKind, 'other'>;
  /** A symlink's target, as checked. */
  target?: string;
}

export interface Artifacts {
  /** Sorted, so archives are deterministic (and a directory comes before its contents). */
  entries: ArtifactEntry[];
  /** Cache dirs that cannot be saved, with why. */
  refused: { dir: string; reason: string }[];
  /** One line per kind of entry left out. */
  warnings: string[];
}

export interface ListInput {
  /** The root as recorded and its real path, as bytes. */
  root: Buffer;
  realRoot: Buffer;
  cacheDirs: readonly string[];
  /** Files that were sources when restore ran: never artifacts. */
  sources: ReadonlySet<BytePath>;
  /** Directories not to enter (the state dir). */
  skip: ReadonlySet<BytePath>;
  signal?: AbortSignal;
}

/** A byte path for messages: as text when it is UTF-8, else with the bytes that are not ASCII escaped. */
export function printable(path: BytePath): string {
  if (isTextPath(path)) return textFromBytePath(path);
  return path.replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
}

/** "a, b, c and 4 more": a list that names each thing at most once and stays one line. */
export function someOf(items: readonly string[], shown = 10): string {
  const head = items.slice(0, shown).join(', ');
  return items.length > shown ? `${head} and ${items.length - shown} more` : head;
}

/**
 * Why a cache dir cannot be saved, or undefined when every component of it is a real directory
 * (no symlink on the way) that resolves to itself below the real root.
 */
async function whyRefused(root: Buffer, realRoot: Buffer, dir: BytePath): Promise<string | undefined> {
  if (dir === '.') return undefined;
  const parts = dir.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    // "is …" of the dir itself, "lies below a, which is …" of a directory on the way.
    const is = i === parts.length ? 'is' : `lies below ${printable(prefix)}, which is`;
    let stat;
    try {
      stat = await lstat(absolutePath(root, prefix));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return i === parts.length ? 'does not exist' : `lies below ${printable(prefix)}, which does not exist`;
      return `${is} unreadable (${describeError(error)})`;
    }
    if (stat.isSymbolicLink()) {
      const target = await readlink(absolutePath(root, prefix), 'latin1').catch(() => '?');
      return `${is} a symlink (to ${printable(target)}): what it leads to is not part of the tree`;
    }
    if (!stat.isDirectory()) return `${is} ${stat.isFile() ? 'a file' : 'neither file nor directory'}, not a directory`;
  }
  const real = await realpath(absolutePath(root, dir), 'latin1').catch(() => undefined);
  const expected = absolutePath(realRoot, dir).toString('latin1');
  return real === expected ? undefined : `resolves to ${real === undefined ? 'nothing' : printable(real)}, not below the tree`;
}

/**
 * Why restore would refuse this symlink, or undefined when it is kept: its target must be UTF-8
 * text, relative, stay inside the tree, and lead through no other symlink (of the tree or the archive).
 */
async function whyLinkRefused(root: Buffer, path: BytePath, target: Buffer): Promise<string | undefined> {
  const text = target.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(target)) return 'target is not UTF-8';
  if (text.startsWith('/')) return 'absolute target';
  const linkPath = textFromBytePath(path);
  if (resolveLinkTarget(linkPath, text) === undefined) return 'points outside the tree';
  for (const step of traversedBy(linkPath, text)) {
    const stat = await lstat(absolutePath(root, bytePathFromText(step))).catch(() => undefined);
    if (stat?.isSymbolicLink()) return `leads through the symlink ${step}`;
  }
  return undefined;
}

/** Every artifact below the cache dirs (what was not a source at restore time), checked. */
export async function listArtifacts(input: ListInput): Promise<Artifacts> {
  const { root, realRoot, sources, signal } = input;
  const result: Artifacts = { entries: [], refused: [], warnings: [] };
  const links: string[] = [];
  const notText: string[] = [];
  const others: string[] = [];
  const unreadable: string[] = [];
  let metaDir = false;
  for (const dir of input.cacheDirs.map(bytePathFromText)) {
    const reason = await whyRefused(root, realRoot, dir);
    if (reason !== undefined) {
      result.refused.push({ dir: textFromBytePath(dir), reason });
      continue;
    }
    if (dir !== '.' && !sources.has(dir)) result.entries.push({ path: dir, kind: 'dir' });
    const walk = walkTree(root, {
      start: dir, skip: input.skip, signal, confineTo: realRoot,
      onProblem: (problem) => unreadable.push(problem.replace(/^cannot read directory /, '')),
      enter: (path) => path !== META_DIR,
    });
    for await (const entries of walk) {
      for (const { path, kind } of entries) {
        if (sources.has(path)) continue;
        if (path === META_DIR) metaDir = true;
        // Names that are not UTF-8 cannot be archived (tar stores UTF-8), nor anything below them;
        // a directory of such a name is named by what it holds, as it may hold only sources.
        else if (!isTextPath(path)) notText.push(...(kind === 'dir' ? [] : [printable(path)]));
        else if (kind === 'other') others.push(textFromBytePath(path));
        else if (kind !== 'symlink') result.entries.push({ path, kind });
        else {
          const target = await readlink(absolutePath(root, path), 'buffer').catch(() => undefined);
          const why = target === undefined ? 'unreadable' : await whyLinkRefused(root, path, target);
          if (why === undefined) result.entries.push({ path, kind, target: target!.toString('utf8') });
          else links.push(`${textFromBytePath(path)} (${why})`);
        }
      }
    }
  }
  result.entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const leftOut = (items: string[], what: string) => {
    if (items.length > 0) result.warnings.push(`not saved: ${items.length} ${what}: ${someOf(items)}`);
  };
  leftOut(links, 'symlinks that restore would refuse (absolute, out of the tree or through another link)');
  leftOut(notText, 'artifacts whose paths are not UTF-8 (tar stores UTF-8 names)');
  leftOut(others, 'entries that are not files, directories or symlinks');
  leftOut(unreadable, 'directories that could not be read, so neither what is in them');
  if (metaDir) result.warnings.push(`not saved: ${META_DIR}, the name the archive keeps its own files under`);
  return result;
}
