import { spawn } from 'node:child_process';
import { Duplex, pipeline, Readable, Writable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { Compression } from './core/config.js';
import { ArchiveError } from './core/errors.js';

/** A stage that may run a program: `gone` settles once the program has exited and its pipes are closed. */
type Stage = Duplex & { gone?: Promise<void> };

/** Compression is one small interface so that adding a codec touches only this file. */
interface Codec {
  /** Recognises the codec from the first bytes of an archive. */
  matches(head: Buffer): boolean;
  compressor(): Stage | undefined;
  decompressor(): Stage | undefined;
}

/**
 * A program as a stream stage (the `zstd` program: Node 20's zlib has no zstd, and the program with
 * two threads beats every binding that installs here). The output ends only once the program has
 * exited well: a failure to start or a non-zero exit (a checksum that fails at the very end, say)
 * fails the stream with the program's own message, never a stream that merely ends early.
 */
function programStage(command: string, args: string[]): Stage {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const gone = new Promise<void>((resolve) => {
    child.on('close', () => resolve());
    child.on('error', () => resolve());
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => reject(new Error(error.code === 'ENOENT'
      ? `cannot run ${command}: not found on PATH (install it, or choose --compression gzip)`
      : `cannot run ${command}: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} failed (${signal ?? `exit ${code}`}): ${programProblem(stderr)}`));
    });
  });
  exited.catch(() => {});
  // A program that stops reading (it failed) says why in its exit status, not as EPIPE.
  child.stdin.on('error', () => {});
  const input = new Writable({
    write: (chunk: Buffer, _encoding, callback) => { child.stdin.write(chunk, () => callback()); },
    final: (callback) => { child.stdin.end(() => callback()); },
  });
  async function* output() {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    await exited;
  }
  const stage = Duplex.from({ writable: input, readable: Readable.from(output(), { objectMode: false }) });
  stage.on('close', () => {
    if (child.exitCode === null) child.kill();
    child.stdin.destroy();
    // Unread output would keep the child's 'close' (and `gone`) from ever coming.
    child.stdout.destroy();
  });
  return Object.assign(stage, { gone });
}

/** The line of a program's messages that says what went wrong (zstd ends with advice about its flags). */
function programProblem(stderr: string): string {
  const lines = stderr.trim().split('\n').map((line) => line.replace(/^.*?\*\\? : /, '').trim());
  return lines.find((line) => /error/i.test(line)) ?? lines.pop() ?? '';
}

const TAR_MAGIC_OFFSET = 257;
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const HEAD_BYTES = TAR_MAGIC_OFFSET + 5;
/** The largest zstd window restore accepts: bounds the memory of the zstd program. */
export const ZSTD_WINDOW_LIMIT_MIB = 32;

const CODECS: Record<Compression, Codec> = {
  gzip: {
    matches: (head) => head[0] === 0x1f && head[1] === 0x8b,
    // Level 1: gzip's higher levels cost 2-4x the time for a few percent of size.
    compressor: () => createGzip({ level: 1, chunkSize: 1 << 20 }),
    decompressor: () => createGunzip({ chunkSize: 1 << 20 }),
  },
  zstd: {
    matches: (head) => head.subarray(0, 4).equals(ZSTD_MAGIC),
    // Level 1 on two threads: faster than a 1 Gbit/s network, three times gzip's speed.
    compressor: () => programStage('zstd', ['-1', '-T2', '-q', '-c']),
    // The window a frame may ask for is capped (zstd's own default is 128 MiB): level 1 writes 512 KiB.
    decompressor: () => programStage('zstd', ['-d', '-q', '-c', `--memory=${ZSTD_WINDOW_LIMIT_MIB}MB`]),
  },
  none: {
    matches: (head) => head.subarray(TAR_MAGIC_OFFSET, HEAD_BYTES).toString('latin1') === 'ustar',
    compressor: () => undefined,
    decompressor: () => undefined,
  },
};

/** The compressing stage for `name`, or undefined for plain tar. */
export function compressor(name: Compression): Duplex | undefined {
  return CODECS[name].compressor();
}

/** The codec an archive was written with, and its name, from its first bytes. */
function detect(head: Buffer): [Compression, Codec] {
  if (head.length === 0) throw new ArchiveError('the archive is empty');
  const found = (Object.entries(CODECS) as [Compression, Codec][]).find(([, candidate]) => candidate.matches(head));
  if (found) return found;
  throw new ArchiveError('not a tar archive, nor a compressed one');
}

/**
 * The archive's tar bytes, whatever compression it was written with (found from its first bytes).
 * What comes out must begin as a tar (node-tar would otherwise unzip a second layer on its own,
 * unbounded). However the reader stops (a refusal, the tar's end), the source is released with it
 * and the decompressing program ended: nothing is read or decompressed beyond what was asked for.
 */
export async function* decompressed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  let ended = false;
  try {
    const head: Buffer[] = [];
    let headLength = 0;
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
    const [name, codec] = detect(prefix);
    const decompressor = codec.decompressor();
    let sourceError: { error: unknown } | undefined;
    async function* whole() {
      yield prefix;
      if (ended) return;
      try {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
        ended = true;
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
      yield* startsAsTar(output as AsyncIterable<Buffer>, name);
    } catch (error) {
      if (sourceError) throw sourceError.error;
      throw error instanceof ArchiveError ? error
        : new ArchiveError(`cannot decompress the archive (${(error as Error).message})`, undefined, { cause: error });
    } finally {
      output.destroy();
      // Its pipes are descriptors of this process until it has exited: a refusal returns after that.
      await decompressor.gone;
    }
  } finally {
    // A reader that stopped early (or a refusal before the end) leaves the source open otherwise:
    // a file descriptor, a download.
    if (!ended) await iterator.return?.();
  }
}

/** The decompressed bytes, refused unless they begin with a tar header. */
async function* startsAsTar(output: AsyncIterable<Buffer>, codec: string): AsyncGenerator<Buffer> {
  let head: Buffer | undefined = Buffer.alloc(0);
  for await (const chunk of output) {
    if (head === undefined) {
      yield chunk;
      continue;
    }
    head = Buffer.concat([head, chunk]);
    if (head.length < HEAD_BYTES) continue;
    if (!CODECS.none.matches(head)) throw new ArchiveError(`not a tar archive inside the ${codec} compression`);
    yield head;
    head = undefined;
  }
  if (head !== undefined) throw new ArchiveError(`not a tar archive inside the ${codec} compression`);
}
