import { ARCHIVE_FORMAT } from './key.js';

/** The archive's own files, stored last, under a directory no cache dir may use. */
export const META_DIR = '.cache-meta';
export const MANIFEST_FILE = `${META_DIR}/MD5SUMS`;
export const META_FILE = `${META_DIR}/meta.json`;
/** MD5 of every artifact file at save time (md5sum format), so settle can tell a rewrite with the same content. */
export const ARTIFACTS_FILE = `${META_DIR}/ARTIFACTS`;
/** The archive's own files, in the order they are stored. */
export const META_FILES = [MANIFEST_FILE, ARTIFACTS_FILE, META_FILE] as const;

/** `.cache-meta/meta.json`: what an archive holds and what made it. */
export interface ArchiveMeta {
  format: number;
  toolVersion: string;
  cacheDirs: string[];
  /** Absolute source root of the build that saved it: a restore elsewhere relocates from it. */
  root: string;
  /** The files (byte paths) whose content mentions the root: the ones a restore elsewhere rewrites. */
  rooted: string[];
  /** ISO 8601 time the archive was made. */
  created: string;
  /** Files and symlinks below the cache dirs. */
  files: number;
  dirs: number;
  /** Bytes of file content below the cache dirs. */
  bytes: number;
  /** Sources in the manifest. */
  sources: number;
  /** Saved by a build that failed (its artifacts are what it got to). */
  buildFailed?: boolean;
}

const NUMBERS = ['format', 'files', 'dirs', 'bytes', 'sources'] as const;

/** Reads meta.json's parsed value; returns the problem when it is not one this version can use. */
export function parseMeta(value: unknown): { meta: ArchiveMeta } | { problem: string } {
  if (typeof value !== 'object' || value === null) return { problem: 'meta.json is not an object' };
  const record = value as Record<string, unknown>;
  for (const field of NUMBERS) {
    const n = record[field];
    if (!Number.isSafeInteger(n) || (n as number) < 0) return { problem: `meta.json: ${field} is not a count (got ${JSON.stringify(n)})` };
  }
  if (record.format !== ARCHIVE_FORMAT) {
    return { problem: `archive format ${String(record.format)} is not ${ARCHIVE_FORMAT}; made by another version` };
  }
  if (typeof record.root !== 'string' || !record.root.startsWith('/')) {
    return { problem: `meta.json: root is not an absolute path (got ${JSON.stringify(record.root)})` };
  }
  if (!Array.isArray(record.rooted) || !record.rooted.every((path) => typeof path === 'string')) {
    return { problem: 'meta.json: rooted is not a list of paths' };
  }
  return { meta: record as unknown as ArchiveMeta };
}
