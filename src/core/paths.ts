/**
 * Paths inside a tree are "byte paths": relative, '/'-separated strings in which each char is one
 * byte of the file name (latin1). File names on Linux are bytes, not text; this keeps names that
 * are not UTF-8 exact through manifests, sets and sorting (string order = byte order).
 */
export type BytePath = string;

export function bytePathFromText(text: string): BytePath {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** The name as text, for messages and for node-tar (which stores UTF-8 names). */
export function textFromBytePath(path: BytePath): string {
  return Buffer.from(path, 'latin1').toString('utf8');
}

/** True when the name survives the trip through text, i.e. it is valid UTF-8. */
export function isTextPath(path: BytePath): boolean {
  return bytePathFromText(textFromBytePath(path)) === path;
}

export function joinBytePath(dir: BytePath, name: BytePath): BytePath {
  return dir === '.' || dir === '' ? name : `${dir}/${name}`;
}

export function parentOf(path: BytePath): BytePath {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '.' : path.slice(0, slash);
}

/** Every proper ancestor of `path`, outermost first ("a/b/c" → ["a", "a/b"]). */
export function ancestorsOf(path: BytePath): BytePath[] {
  const result: BytePath[] = [];
  for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) result.push(path.slice(0, slash));
  return result;
}

/** Whether `path` is `dir` or below it; the cache dir "." holds everything. */
export function isWithin(path: BytePath, dir: BytePath): boolean {
  return dir === '.' || path === dir || path.startsWith(`${dir}/`);
}

/** An empty or "." or ".." segment. */
const NOT_NORMAL = /\/\/|(?:^|\/)\.\.?(?:\/|$)/;

/**
 * Normalises a relative path ("./a//b/" → "a/b"). Returns undefined for absolute paths and any
 * path with a ".." segment: nothing relative may climb, whatever follows the "..".
 */
export function normalizeRelative(path: string): string | undefined {
  if (path.startsWith('/')) return undefined;
  // Already normal but for a directory's trailing slash: every entry of our own archives.
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  if (trimmed !== '' && !trimmed.endsWith('/') && !NOT_NORMAL.test(trimmed)) return trimmed;
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return undefined;
  return parts.length === 0 ? '.' : parts.join('/');
}

/**
 * Where a symlink at `linkPath` with target `target` points, relative to the tree's root, or
 * undefined when it points outside the tree (absolute, or climbing above the root).
 */
export function resolveLinkTarget(linkPath: string, target: string): string | undefined {
  if (target.startsWith('/')) return undefined;
  const parts = linkPath.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(part);
  }
  return parts.length === 0 ? '.' : parts.join('/');
}
