import { createRequire } from 'node:module';
import type { HasherName } from './types.js';

/** The native hasher (src/native/md5.c), built by `npm install` with node-gyp. */
export interface NativeHasher {
  /** Whether the CPU has AVX2; without it the addon is not used. */
  simd: boolean;
  /**
   * `prefix` is the root with a trailing slash, `paths` byte paths joined by NUL: 32 hex digits per
   * path, [index, errno] for each that failed, bytes read.
   */
  hashFiles(prefix: Buffer, paths: string): [string, [number, number][], number];
}

/**
 * The SIMD hasher when it was built and the CPU has AVX2, unless NBC_HASHER=crypto asks for
 * node:crypto, which is also the fallback: the same digests at a third of the speed.
 */
function loadNativeHasher(): NativeHasher | undefined {
  if (process.env.NBC_HASHER === 'crypto') return undefined;
  try {
    const native = createRequire(import.meta.url)('../../build/Release/nbc_md5.node') as NativeHasher;
    return native.simd ? native : undefined;
  } catch {
    return undefined;
  }
}

/** This thread's hasher, loaded with the module; each hash result says which it is, for reports. */
export const native = loadNativeHasher();
export const hasherName: HasherName = native ? 'simd' : 'crypto';
