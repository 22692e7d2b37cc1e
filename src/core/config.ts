import { normalizeRelative } from './paths.js';

/** Archive compressions this version writes; reading detects the format from the data. */
export const COMPRESSIONS = ['gzip', 'zstd', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface ExtractLimits {
  /** Most bytes of file content an archive may unpack to. */
  maxBytes: number;
  /** Most entries an archive may hold. */
  maxEntries: number;
}

/** Defaults that no honest cache of a large monorepo reaches, and that stop a decompression bomb. */
export const DEFAULT_LIMITS: ExtractLimits = { maxBytes: 32 * 2 ** 30, maxEntries: 2_000_000 };

const NAME = /^[A-Za-z0-9._+=@-]+(\/[A-Za-z0-9._+=@-]+)*$/;
const MAX_NAME = 200;

/** Checks a cache name; returns a problem as `field: what is wrong (got X)`, or undefined. */
export function checkCacheName(field: string, name: unknown): string | undefined {
  const got = `(got ${JSON.stringify(name)})`;
  if (typeof name !== 'string' || name === '') return `${field}: required ${got}`;
  if (name.length > MAX_NAME) return `${field}: longer than ${MAX_NAME} characters ${got}`;
  if (!NAME.test(name) || name.split('/').some((part) => part === '.' || part === '..')) {
    return `${field}: use letters, digits, "._+=@-" and "/" between non-empty parts ${got}`;
  }
  return undefined;
}

/** Checks and normalises cache dirs (relative to the source root; "." means the whole tree). */
export function checkCacheDirs(field: string, dirs: unknown): { dirs: string[]; problems: string[] } {
  if (!Array.isArray(dirs) || dirs.length === 0) {
    return { dirs: [], problems: [`${field}: at least one directory is required (got ${JSON.stringify(dirs)})`] };
  }
  const problems: string[] = [];
  const normalized: string[] = [];
  for (const dir of dirs) {
    const got = `(got ${JSON.stringify(dir)})`;
    const clean = typeof dir === 'string' && dir !== '' ? normalizeRelative(dir) : undefined;
    if (clean === undefined) problems.push(`${field}: must be a relative path without ".." ${got}`);
    else if (clean === '.cache-meta' || clean.startsWith('.cache-meta/')) {
      problems.push(`${field}: .cache-meta is reserved for the archive's manifest ${got}`);
    } else normalized.push(clean);
  }
  const sorted = [...new Set(normalized)].sort();
  for (const dir of sorted) {
    const outer = sorted.find((other) => other !== dir && (other === '.' || dir.startsWith(`${other}/`)));
    if (outer !== undefined) problems.push(`${field}: ${dir} is inside ${outer}; list only ${outer}`);
  }
  return { dirs: sorted, problems };
}

export function checkChoice<T extends string>(field: string, value: unknown, choices: readonly T[]): string | undefined {
  return choices.includes(value as T) ? undefined
    : `${field}: must be one of ${choices.join(', ')} (got ${JSON.stringify(value)})`;
}

export function checkPositiveInteger(field: string, value: unknown): string | undefined {
  return Number.isInteger(value) && (value as number) > 0 ? undefined
    : `${field}: must be a positive integer (got ${JSON.stringify(value)})`;
}
