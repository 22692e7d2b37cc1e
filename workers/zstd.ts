import { createRequire } from 'node:module';

/** The zstd addon (src/native/zstd.c): one frame per blob, made and read whole. */
export interface Zstd {
  /** The frame's length in `dst`, or 0 when it does not fit there (the blob is then kept as it is). */
  compress(src: Uint8Array, dst: Uint8Array, level: number): number;
  /** Fills `dst` exactly with the content of the frame `src`; throws when it does not. */
  decompress(src: Uint8Array, dst: Uint8Array): void;
}

/**
 * The addon where `npm install` built it (it needs libzstd), unless NBC_ZSTD=off asks to do without:
 * saves then keep blobs as they are, and compressed blobs cannot be restored.
 */
function loadZstd(): Zstd | undefined {
  if (process.env.NBC_ZSTD === 'off') return undefined;
  try {
    return createRequire(import.meta.url)('../../build/Release/nbc_zstd.node') as Zstd;
  } catch {
    return undefined;
  }
}

/** This thread's addon, loaded with the module. */
export const zstd = loadZstd();
