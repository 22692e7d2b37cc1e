import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';
import type { Credentials } from '../core/credentials.js';
import {
  archiveObjectKey, besideOf, besidePrefix, collectable, formatPointer, isArchiveKey, logicalListing, ORPHAN_AGE_MS, parsePointer,
  type Pointer, type RawObject,
} from '../core/pointer.js';
import { ArchiveError, NbcError, StoreError } from '../core/errors.js';
import { rangeOf } from './range.js';
import { PatientCompletionHandler, smallText, statusOf, storeError, withIdleTimeout } from './s3-http.js';
import type { Store, StoredBody, StoredObject } from './store.js';

// The SDK is CommonJS: require() loads it about 0.1 s faster than import(), which first scans
// every one of its modules for named exports. Every s3:// run pays this start-up, twice a build.
const require = createRequire(import.meta.url);
const {
  AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand,
  S3Client,
} = require('@aws-sdk/client-s3') as typeof ClientS3;
const { Upload } = require('@aws-sdk/lib-storage') as typeof LibStorage;

export interface S3Settings {
  /** Any S3-compatible server, e.g. http://127.0.0.1:9000. Default: AWS for the region. */
  endpoint?: string;
  /** Default "us-east-1". */
  region?: string;
  /** Default: the AWS SDK's own chain (environment, shared files, instance roles). */
  credentials?: Credentials;
  /**
   * Bytes per uploaded part. Default 8 MiB (S3's minimum is 5 MiB). Upload memory is bounded by
   * about (queueSize + 1) × partSize of live buffers (peak RSS ≈ 4 × queueSize × partSize + 80 MiB).
   */
  partSize?: number;
  /** Parts uploaded at once. Default 4. */
  queueSize?: number;
  /** Milliseconds to wait for a connection. Default 2000: a dead endpoint costs seconds, not minutes. */
  connectTimeout?: number;
  /** Milliseconds a request or download may sit idle. Default 10000. */
  socketTimeout?: number;
  /** Attempts per request, retries included. Default 3. */
  maxAttempts?: number;
}

/** An upload of known size aims at this many parts; parts never grow past MAX_PART_GROWTH × partSize. */
const PARTS_WANTED = 24;
const MAX_PART_GROWTH = 4;

export const S3_DEFAULTS = {
  region: 'us-east-1', partSize: 8 << 20, queueSize: 4, connectTimeout: 2000, socketTimeout: 10_000, maxAttempts: 3,
} as const;

/**
 * The metadata of a pointer (see core/pointer.ts): the nonce it names, for the next save to know
 * what it replaces without a download. Archives of the format before carry LEGACY_NONCE instead.
 */
const POINTER_MARK = 'nbc-pointer';
/** The format before pointers: the archive at the key, its digest at `<key>.<nonce>.sha256`. */
const LEGACY_NONCE = 'nbc-nonce';
const legacyDigestKey = (key: string, nonce: string) => `${key}.${nonce}.sha256`;
/** A bucket (and optional prefix) on S3 or any S3-compatible server. */
export class S3Store implements Store {
  readonly location: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #client: ClientS3.S3Client;
  readonly #ownsClient: boolean;
  readonly #credentials: Credentials | undefined;
  readonly #settings: Required<Omit<S3Settings, 'endpoint' | 'credentials'>>;

  /** `client` is for tests and callers with their own client; it is then not destroyed by close(). */
  constructor(bucket: string, prefix: string, settings: S3Settings = {}, client?: ClientS3.S3Client) {
    this.#bucket = bucket;
    this.#prefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.location = `s3://${bucket}/${this.#prefix}`;
    this.#settings = {
      region: settings.region ?? S3_DEFAULTS.region,
      partSize: settings.partSize ?? S3_DEFAULTS.partSize,
      queueSize: settings.queueSize ?? S3_DEFAULTS.queueSize,
      connectTimeout: settings.connectTimeout ?? S3_DEFAULTS.connectTimeout,
      socketTimeout: settings.socketTimeout ?? S3_DEFAULTS.socketTimeout,
      maxAttempts: settings.maxAttempts ?? S3_DEFAULTS.maxAttempts,
    };
    this.#ownsClient = client === undefined;
    this.#credentials = settings.credentials;
    this.#client = client ?? new S3Client({
      region: this.#settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      maxAttempts: this.#settings.maxAttempts,
      // Streamed bodies with the default checksums are sent aws-chunked, which several S3-compatible
      // servers store as data: checksum only where the API requires it.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new PatientCompletionHandler({ connectionTimeout: this.#settings.connectTimeout, socketTimeout: this.#settings.socketTimeout }),
    });
  }

  /** The credentials this store signs with (once the SDK has resolved them), to keep out of messages. */
  async #secrets(error: unknown): Promise<(string | undefined)[]> {
    // Resolving again after the chain itself failed would probe it all again (instance metadata...).
    const resolved = this.#credentials ?? ((error as Error).name === 'CredentialsProviderError' ? undefined
      : await this.#client.config.credentials().catch(() => undefined));
    return [resolved?.accessKeyId, resolved?.secretAccessKey, resolved?.sessionToken];
  }

  async #storeError(operation: string, where: string, error: unknown): Promise<NbcError> {
    return storeError(operation, where, error, error instanceof NbcError ? [] : await this.#secrets(error));
  }

  #key(key: string): string {
    return `${this.#prefix}${key}`;
  }

  #where(key: string): string {
    return `s3://${this.#bucket}/${this.#key(key)}`;
  }

  async #getBody(key: string, signal?: AbortSignal) {
    try {
      return await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }), { abortSignal: signal });
    } catch (error) {
      if (statusOf(error) === 404 && (error as Error).name !== 'NoSuchBucket') return undefined;
      throw await this.#storeError('download', this.#where(key), error);
    }
  }

  /** Bytes [start, end) of a plain object (a pack), by a Range GET. */
  async getRange(key: string, start: number, end: number, signal?: AbortSignal, into?: Buffer, filled?: (bytes: number) => void): Promise<Buffer | undefined> {
    try {
      const object = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Range: `bytes=${start}-${end - 1}` }),
        { abortSignal: signal });
      if (into) return await rangeOf(object.Body as Readable, 0, end - start, into, filled);
      const bytes = await object.Body!.transformToByteArray();
      // A view, not a copy: a run of a pack is tens of MiB.
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      if (statusOf(error) === 404 && (error as Error).name !== 'NoSuchBucket') return undefined;
      throw await this.#storeError('download', this.#where(key), error);
    }
  }

  /**
   * Follows the pointer at `key` to the archive it names and streams it, checking its SHA-256 (an
   * archive of the format before: its digest beside it). A pointer that is torn or names an
   * archive that is gone (a save or a prune replaced it just now) is read once more.
   */
  async get(key: string, signal?: AbortSignal): Promise<StoredBody | undefined> {
    for (let attempt = 1; ; attempt++) {
      const object = await this.#getBody(key, signal);
      if (!object?.Body) return undefined;
      const body = object.Body as Readable;
      if (object.Metadata?.[POINTER_MARK] === undefined) {
        if (!isArchiveKey(key) && object.Metadata?.[LEGACY_NONCE] === undefined) return withIdleTimeout(body, this.#settings.socketTimeout, signal);
        return this.#legacy(key, body, object.Metadata?.[LEGACY_NONCE], signal);
      }
      const pointer = parsePointer(await smallText(body) ?? '');
      const archive = pointer && await this.#getBody(archiveObjectKey(key, pointer.object), signal);
      if (pointer && archive?.Body) return this.#verified(archive.Body as Readable, pointer, this.#where(archiveObjectKey(key, pointer.object)), signal);
      if (attempt === 2) {
        throw new ArchiveError(pointer ? `the pointer names ${archiveObjectKey(key, pointer.object)}, which is gone` : 'the pointer is damaged', this.#where(key));
      }
    }
  }

  /** An archive of the format before pointers: the nonce in its metadata names its digest. */
  async #legacy(key: string, body: Readable, nonce: string | undefined, signal?: AbortSignal): Promise<StoredBody> {
    let digest: Pointer | undefined;
    try {
      const object = nonce === undefined ? undefined : await this.#getBody(legacyDigestKey(key, nonce), signal);
      const parsed = object?.Body ? JSON.parse(await smallText(object.Body as Readable) ?? '') as Partial<Pointer> : undefined;
      if (typeof parsed?.sha256 === 'string' && typeof parsed.bytes === 'number') digest = { object: nonce!, sha256: parsed.sha256, bytes: parsed.bytes };
    } catch (error) {
      if (error instanceof StoreError) {
        body.destroy();
        throw error;
      }
    }
    if (!digest) {
      body.destroy();
      throw new ArchiveError('the archive has no digest beside it (a save still running, or cut short?)', this.#where(key));
    }
    return this.#verified(body, digest, this.#where(key), signal);
  }

  /** The body, checked against the digest as it streams: more bytes than promised end it at once. */
  #verified(body: Readable, digest: Pointer, where: string, signal?: AbortSignal): StoredBody {
    const timeout = this.#settings.socketTimeout;
    const fail = (error: unknown) => this.#storeError('download', where, error);
    return Object.assign((async function* verified() {
      const hash = createHash('sha256');
      let bytes = 0;
      try {
        for await (const chunk of withIdleTimeout(body, timeout, signal)) {
          hash.update(chunk);
          bytes += chunk.length;
          if (bytes > digest.bytes) break;
          yield chunk;
        }
      } catch (error) {
        throw await fail(error);
      } finally {
        body.destroy();
      }
      if (bytes !== digest.bytes || hash.digest('hex') !== digest.sha256) {
        throw new ArchiveError(`digest mismatch: got ${bytes} bytes, expected ${digest.bytes} with another SHA-256`, where);
      }
    })(), { size: digest.bytes });
  }

  /**
   * The nonce of the archive the pointer at `key` names now, from its metadata (a HEAD: no
   * download); undefined when there is none or it cannot be read.
   */
  async #pointedAt(key: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }), { abortSignal: signal });
      return head.Metadata?.[POINTER_MARK];
    } catch {
      return undefined;
    }
  }

  /** The nonce the pointer at `key` names, read from its body; undefined when it is no pointer. */
  async #pointerNonce(key: string, signal?: AbortSignal): Promise<string | undefined> {
    const object = await this.#getBody(key, signal);
    if (object?.Metadata?.[POINTER_MARK] === undefined) {
      (object?.Body as Readable | undefined)?.destroy();
      return undefined;
    }
    return parsePointer(await smallText(object.Body as Readable) ?? '')?.object;
  }

  /**
   * Uploads the archive under a key of its own, then points `key` at it (see core/pointer.ts), then
   * removes what the pointer no longer needs. A failure before the pointer is written leaves the
   * previous archive in place; racing saves each leave a whole archive, and the pointer names one.
   * Other objects (markers, not archives) are written at their key as they are.
   */
  async put(key: string, body: Readable, signal?: AbortSignal, sizeHint?: number): Promise<{ bytes: number }> {
    if (!isArchiveKey(key)) return { bytes: (await this.#upload(key, body, signal, sizeHint)).bytes };
    const previous = await this.#pointedAt(key, signal);
    const nonce = randomBytes(8).toString('hex');
    const objectKey = archiveObjectKey(key, nonce);
    const { bytes, sha256 } = await this.#upload(objectKey, body, signal);
    try {
      await this.#client.send(new PutObjectCommand({
        Bucket: this.#bucket, Key: this.#key(key), Body: formatPointer({ object: nonce, sha256, bytes }),
        ContentType: 'application/json', Metadata: { [POINTER_MARK]: nonce },
      }), { abortSignal: signal });
    } catch (error) {
      // The archive uploaded is nobody's: the pointer still names the previous one.
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(objectKey) })).catch(() => {});
      throw await this.#storeError('upload pointer', this.#where(key), error);
    }
    await this.#collect(key, nonce, previous).catch(() => {});
    return { bytes };
  }

  /**
   * The part size and parts in flight for an upload of about `sizeHint` bytes: parts grow (up to
   * four times the configured size) so that a large upload takes a few dozen requests, not one per
   * 8 MiB, and fewer go at once, so that the bytes in flight stay as configured.
   */
  #parts(sizeHint: number | undefined): { partSize: number; queueSize: number } {
    const { partSize, queueSize } = this.#settings;
    const size = Math.min(Math.max(partSize, Math.ceil((sizeHint ?? 0) / PARTS_WANTED)), MAX_PART_GROWTH * partSize);
    return { partSize: size, queueSize: Math.max(1, Math.floor((queueSize * partSize) / size)) };
  }

  /** Uploads `body` to `key` (in parts when large), counting and hashing it on the way. */
  async #upload(key: string, body: Readable, signal?: AbortSignal, sizeHint?: number): Promise<{ bytes: number; sha256: string }> {
    const hash = createHash('sha256');
    let bytes = 0;
    const counted = Readable.from((async function* count() {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    })(), { objectMode: false });
    const abortController = new AbortController();
    const onAbort = () => abortController.abort();
    signal?.addEventListener('abort', onAbort);
    const upload = new Upload({
      client: this.#client, ...this.#parts(sizeHint), abortController,
      // We abort a failed upload ourselves: some servers refuse AbortMultipartUpload, and the SDK
      // would then report that refusal instead of what went wrong.
      leavePartsOnError: true,
      params: { Bucket: this.#bucket, Key: this.#key(key), Body: counted },
    });
    try {
      await upload.done();
      signal?.throwIfAborted();
    } catch (error) {
      counted.destroy();
      const uploadId = (upload as unknown as { uploadId?: string }).uploadId;
      if (uploadId) {
        await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: this.#key(key), UploadId: uploadId }))
          .catch(() => {});
      }
      throw await this.#storeError('upload', this.#where(key), signal?.aborted ? signal.reason ?? error : error);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return { bytes, sha256: hash.digest('hex') };
  }

  /** Deletes what a save that pointed `key` at `current` leaves unneeded (see collectable). */
  async #collect(key: string, current: string, previous: string | undefined): Promise<void> {
    for (const doomed of collectable(await this.#listRaw(undefined, besidePrefix(key)), key, current, previous)) {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(doomed) }));
    }
  }

  async #listRaw(signal: AbortSignal | undefined, under: string): Promise<RawObject[]> {
    const objects: RawObject[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.#client.send(new ListObjectsV2Command({
          Bucket: this.#bucket, Prefix: this.#key(under), ...(token ? { ContinuationToken: token } : {}),
        }), { abortSignal: signal });
        for (const item of page.Contents ?? []) {
          if (item.Key === undefined) continue;
          objects.push({ key: item.Key.slice(this.#prefix.length), size: item.Size ?? 0, modified: item.LastModified ?? new Date(0) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (error) {
      throw await this.#storeError('list', `s3://${this.#bucket}/${this.#prefix}`, error);
    }
    return objects;
  }

  /** One entry per cache key, sized as its newest archive; the archive objects beside are not listed. */
  async list(signal?: AbortSignal, under = ''): Promise<StoredObject[]> {
    // The archive objects of a key `under` names lie beside it, not below: list from its stem.
    const raw = await this.#listRaw(signal, under === '' ? '' : besidePrefix(under).slice(0, -1));
    return logicalListing(raw).filter((object) => object.key.startsWith(under));
  }

  /** Removes the pointer first (readers then miss, never follow it to nothing), then every archive beside it. */
  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const beside = (await this.#listRaw(signal, besidePrefix(key))).filter((object) => besideOf(object.key)?.base === key).map((object) => object.key);
    for (const name of [key, ...beside]) {
      try {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(name) }), { abortSignal: signal });
      } catch (error) {
        throw await this.#storeError('delete', this.#where(name), error);
      }
    }
  }

  /**
   * Removes archives no pointer names (saves that lost a race or died before pointing at theirs)
   * once older than ORPHAN_AGE_MS, and digests left beside keys that are now pointers; for prune.
   */
  async removeStale(signal?: AbortSignal): Promise<string[]> {
    const raw = await this.#listRaw(signal, '');
    const keys = new Set(raw.map((object) => object.key));
    const now = Date.now();
    const named = new Map<string, string | undefined>();
    const removed: string[] = [];
    for (const object of raw) {
      const beside = besideOf(object.key);
      if (!beside) continue;
      // The pointer's body, not its metadata: a server that writes them apart may pair one writer's with another's.
      if (!named.has(beside.base)) named.set(beside.base, keys.has(beside.base) ? await this.#pointerNonce(beside.base, signal) : undefined);
      const pointed = named.get(beside.base);
      const stale = beside.legacyDigest ? pointed !== undefined || !keys.has(beside.base)
        : beside.nonce !== pointed && now - object.modified.getTime() > ORPHAN_AGE_MS;
      if (!stale) continue;
      try {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(object.key) }), { abortSignal: signal });
      } catch (error) {
        throw await this.#storeError('delete', this.#where(object.key), error);
      }
      removed.push(object.key);
    }
    return removed;
  }

  close(): void {
    if (this.#ownsClient) this.#client.destroy();
  }
}
