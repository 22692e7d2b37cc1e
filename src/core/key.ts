import { createHash } from 'node:crypto';
import type { Compression } from './config.js';

/** Version of the archive layout; bump it when an archive's meaning changes. */
export const ARCHIVE_FORMAT = 2;

const EXTENSIONS: Record<Compression, string> = { gzip: '.tar.gz', zstd: '.tar.zst', none: '.tar' };

export interface KeyInputs {
  cacheDirs: readonly string[];
  compression: Compression;
  /** Anything else that makes archives incompatible, such as a toolchain fingerprint. */
  salt?: string | undefined;
}

function shortHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 8);
}

/**
 * The object key of a cache: `<name>/v<format>-<settings><salt><ext>`, where `settings` hashes the
 * archive format, cache dirs and compression and `salt` hashes the salt (8 hex digits each), as
 * @actions/cache versions its keys: anything that changes what an archive means is a clean miss,
 * never a restore of something incompatible, and a miss can tell which half differed.
 */
export function objectKey(name: string, inputs: KeyInputs): string {
  const settings = shortHash([ARCHIVE_FORMAT, [...inputs.cacheDirs].sort(), inputs.compression]);
  return `${name}/v${ARCHIVE_FORMAT}-${settings}${shortHash(inputs.salt ?? '')}${EXTENSIONS[inputs.compression]}`;
}

/**
 * Why `wanted` is missing although `others` (keys of the same name) exist: the salt differs, or the
 * settings (format, cache dirs, compression) do. Undefined when there are no others.
 */
export function whyMissing(wanted: string, others: readonly string[]): string | undefined {
  const version = (key: string) => /\/v(\d+)-([0-9a-f]{8})([0-9a-f]{8})\.tar(?:\.gz|\.zst)?$/.exec(key);
  const mine = version(wanted);
  const found = others.map(version).filter((match) => match !== null);
  if (!mine || found.length === 0) return undefined;
  if (found.some((match) => match[1] === mine[1] && match[2] === mine[2])) {
    return 'archives of this name exist for another toolchain salt (the compiler or build inputs changed)';
  }
  return 'archives of this name exist for other settings (cache dirs, compression or archive format)';
}
