import { ARCHIVE_FORMAT } from './key.js';

/** The archive's own files, stored last, under a directory no cache dir may use. */
export const META_DIR = '.cache-meta';
export const MANIFEST_FILE = `${META_DIR}/MD5SUMS`;
export const META_FILE = `${META_DIR}/meta.json`;

/** `.cache-meta/meta.json`: what an archive holds and what made it. */
export interface ArchiveMeta {
  format: number;
  toolVersion: string;
  cacheDirs: string[];
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
  return { meta: record as unknown as ArchiveMeta };
}
