import { pipeline, Readable, type Transform } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { Compression } from './core/config.js';
import { ArchiveError } from './errors.js';

/** Compression is one small interface so that adding a codec touches only this file. */
interface Codec {
  /** Recognises the codec from the first bytes of an archive. */
  matches(head: Buffer): boolean;
  compressor(): Transform | undefined;
  decompressor(): Transform | undefined;
}

const TAR_MAGIC_OFFSET = 257;
const HEAD_BYTES = TAR_MAGIC_OFFSET + 5;

const CODECS: Record<Compression, Codec> = {
  gzip: {
    matches: (head) => head[0] === 0x1f && head[1] === 0x8b,
    // Level 1: gzip's higher levels cost 2-4x the time for a few percent of size.
    compressor: () => createGzip({ level: 1, chunkSize: 1 << 20 }),
    decompressor: () => createGunzip({ chunkSize: 1 << 20 }),
  },
  none: {
    matches: (head) => head.subarray(TAR_MAGIC_OFFSET, HEAD_BYTES).toString('latin1') === 'ustar',
    compressor: () => undefined,
    decompressor: () => undefined,
  },
};

/** The compressing transform for `name`, or undefined for plain tar. */
export function compressor(name: Compression): Transform | undefined {
  return CODECS[name].compressor();
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

function detect(head: Buffer): Codec {
  if (head.length === 0) throw new ArchiveError('the archive is empty');
  const codec = Object.values(CODECS).find((candidate) => candidate.matches(head));
  if (codec) return codec;
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) throw new ArchiveError('zstd archives are not supported by this version');
  throw new ArchiveError('not a tar archive, nor a compressed one');
}

/** The archive's tar bytes, whatever compression it was written with (found from its first bytes). */
export async function* decompressed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLength = 0;
  let ended = false;
  while (headLength < HEAD_BYTES) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  const prefix = Buffer.concat(head);
  const decompressor = detect(prefix).decompressor();
  let sourceError: { error: unknown } | undefined;
  async function* whole() {
    yield prefix;
    if (ended) return;
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } catch (error) {
      sourceError = { error };
      throw error;
    }
  }
  if (!decompressor) {
    yield* whole();
    return;
  }
  const output = pipeline(Readable.from(whole(), { objectMode: false }), decompressor, () => {});
  try {
    for await (const chunk of output) yield chunk as Buffer;
  } catch (error) {
    if (sourceError) throw sourceError.error;
    throw error instanceof ArchiveError ? error
      : new ArchiveError(`the compressed stream is corrupt (${(error as Error).message})`, undefined, { cause: error });
  }
}
