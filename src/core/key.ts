import { createHash } from 'node:crypto';
import type { Compression } from './config.js';

/** Version of the archive layout; bump it when an archive's meaning changes. */
export const ARCHIVE_FORMAT = 1;

const EXTENSIONS: Record<Compression, string> = { gzip: '.tar.gz', none: '.tar' };

export interface KeyInputs {
  cacheDirs: readonly string[];
  compression: Compression;
  /** Anything else that makes archives incompatible, such as a toolchain fingerprint. */
  salt?: string | undefined;
}

/**
 * The object key of a cache: `<name>/v<format>-<version><ext>`. The version hashes everything that
 * changes what an archive means (as @actions/cache does), so a different cache dir, compression,
 * salt or archive format is a clean miss rather than a restore of something incompatible.
 */
export function objectKey(name: string, inputs: KeyInputs): string {
  const version = createHash('sha256')
    .update(JSON.stringify([ARCHIVE_FORMAT, [...inputs.cacheDirs].sort(), inputs.compression, inputs.salt ?? '']))
    .digest('hex')
    .slice(0, 16);
  return `${name}/v${ARCHIVE_FORMAT}-${version}${EXTENSIONS[inputs.compression]}`;
}
