import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';
import type * as HttpHandler from '@smithy/node-http-handler';
import type { Credentials } from '../core/credentials.js';
import { ArchiveError, describeError, StoreError } from '../errors.js';
import type { Store, StoredObject } from './store.js';

// The SDK is CommonJS: require() loads it about 0.1 s faster than import(), which first scans
// every one of its modules for named exports. Every s3:// run pays this start-up, twice a build.
const require = createRequire(import.meta.url);
const {
  AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand,
  S3Client,
} = require('@aws-sdk/client-s3') as typeof ClientS3;
const { Upload } = require('@aws-sdk/lib-storage') as typeof LibStorage;
const { NodeHttpHandler } = require('@smithy/node-http-handler') as typeof HttpHandler;

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

export const S3_DEFAULTS = {
  region: 'us-east-1', partSize: 8 << 20, queueSize: 4, connectTimeout: 2000, socketTimeout: 10_000, maxAttempts: 3,
} as const;

/**
 * Completing a multipart upload, the server assembles the object before it answers: S3 says this
 * can take minutes (it sends blank lines meanwhile), s3rver copies every part and stays silent. The
 * socket timeout would cut that short, the SDK retry the completion, and the upload fail although
 * the object appears; so completion alone may stay silent this long.
 */
const COMPLETION_TIMEOUT = 5 * 60_000;

class PatientCompletionHandler extends NodeHttpHandler {
  readonly #completion: HttpHandler.NodeHttpHandler;

  constructor(options: { connectionTimeout: number; socketTimeout: number }) {
    super(options);
    this.#completion = new NodeHttpHandler({ ...options, socketTimeout: Math.max(COMPLETION_TIMEOUT, options.socketTimeout) });
  }

  override handle(...[request, options]: Parameters<HttpHandler.NodeHttpHandler['handle']>) {
    const completing = request.method === 'POST' && request.query?.uploadId !== undefined;
    return completing ? this.#completion.handle(request, options) : super.handle(request, options);
  }

  override destroy(): void {
    this.#completion.destroy();
    super.destroy();
  }
}

/**
 * Each upload gets a random nonce, stored in the archive's metadata; once the upload is complete its
 * SHA-256 goes beside it at `<key>.<nonce>.sha256`. A reader finds the digest of exactly the object
 * it reads, even when two saves to one name race.
 */
interface Digest {
  sha256: string;
  bytes: number;
}
const NONCE = 'nbc-nonce';
const digestKey = (key: string, nonce: string) => `${key}.${nonce}.sha256`;

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function hintFor(error: unknown, status: number | undefined): string {
  const name = (error as Error).name;
  const code = (error as NodeJS.ErrnoException).code ?? name;
  if (status === 403 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Credentials/i.test(code)) {
    return 'check the credentials and the bucket policy';
  }
  if (name === 'NoSuchBucket') return 'check the bucket name in --store, or create the bucket';
  if (status !== undefined && status >= 500) return 'the server failed; the next build will try again';
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EPIPE|Timeout/i.test(`${code} ${name}`)) {
    return 'is the endpoint right and the server up?';
  }
  return 'see the message';
}

/** Turns an SDK or network error into a one-line StoreError; credentials are never part of it. */
function storeError(operation: string, where: string, error: unknown): StoreError | ArchiveError {
  if (error instanceof StoreError || error instanceof ArchiveError) return error;
  const status = statusOf(error);
  const name = (error as Error).name;
  const text = describeError(error);
  const message = name && name !== 'Error' && !text.includes(name) ? `${name}: ${text}` : text;
  return new StoreError(operation, where, message || name || 'unknown error',
    { ...(status === undefined ? {} : { status }), hint: hintFor(error, status), cause: error });
}

/** Throws a TimeoutError if the stream gives nothing for `ms`; a stalled download must end. */
async function* withIdleTimeout(body: Readable, ms: number): AsyncGenerator<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => body.destroy(Object.assign(new Error(`no data for ${ms} ms`), { name: 'TimeoutError' })), ms);
  };
  try {
    arm();
    for await (const chunk of body) {
      arm();
      yield chunk as Buffer;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** A bucket (and optional prefix) on S3 or any S3-compatible server. */
export class S3Store implements Store {
  readonly location: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #client: ClientS3.S3Client;
  readonly #ownsClient: boolean;
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
      throw storeError('download', this.#where(key), error);
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<AsyncIterable<Buffer> | undefined> {
    const object = await this.#getBody(key, signal);
    if (!object?.Body) return undefined;
    const body = object.Body as Readable;
    const nonce = object.Metadata?.[NONCE];
    const digestObject = nonce === undefined ? undefined : await this.#getBody(digestKey(key, nonce), signal).catch((error: unknown) => {
      body.destroy();
      throw error;
    });
    let digest: Digest | undefined;
    try {
      digest = digestObject?.Body ? JSON.parse(await digestObject.Body.transformToString()) as Digest : undefined;
    } catch {
      digest = undefined;
    }
    if (!digest) {
      body.destroy();
      throw new ArchiveError('the archive has no digest beside it (a save still running, or cut short?)', this.#where(key));
    }
    const where = this.#where(key);
    const timeout = this.#settings.socketTimeout;
    return (async function* verified() {
      const hash = createHash('sha256');
      let bytes = 0;
      try {
        for await (const chunk of withIdleTimeout(body, timeout)) {
          hash.update(chunk);
          bytes += chunk.length;
          yield chunk;
        }
      } catch (error) {
        throw storeError('download', where, error);
      }
      if (bytes !== digest.bytes || hash.digest('hex') !== digest.sha256) {
        throw new ArchiveError(`digest mismatch: got ${bytes} bytes, expected ${digest.bytes} with another SHA-256`, where);
      }
    })();
  }

  async #nonceOf(key: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }), { abortSignal: signal });
      return head.Metadata?.[NONCE];
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw storeError('look up', this.#where(key), error);
    }
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }> {
    const previous = await this.#nonceOf(key, signal);
    const nonce = randomBytes(8).toString('hex');
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
      client: this.#client, partSize: this.#settings.partSize, queueSize: this.#settings.queueSize, abortController,
      // We abort a failed upload ourselves: some servers refuse AbortMultipartUpload, and the SDK
      // would then report that refusal instead of what went wrong.
      leavePartsOnError: true,
      params: { Bucket: this.#bucket, Key: this.#key(key), Body: counted, Metadata: { [NONCE]: nonce } },
    });
    try {
      await upload.done();
    } catch (error) {
      counted.destroy();
      const uploadId = (upload as unknown as { uploadId?: string }).uploadId;
      if (uploadId) {
        await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: this.#key(key), UploadId: uploadId }))
          .catch(() => {});
      }
      throw storeError('upload', this.#where(key), error);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    const digest: Digest = { sha256: hash.digest('hex'), bytes };
    try {
      await this.#client.send(new PutObjectCommand({
        Bucket: this.#bucket, Key: this.#key(digestKey(key, nonce)), Body: Buffer.from(JSON.stringify(digest)),
        ContentType: 'application/json',
      }), { abortSignal: signal });
    } catch (error) {
      throw storeError('upload digest', this.#where(digestKey(key, nonce)), error);
    }
    if (previous !== undefined) {
      // The replaced archive's digest; a leftover is harmless (prune removes it with the archive).
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(digestKey(key, previous)) })).catch(() => {});
    }
    return { bytes };
  }

  async list(signal?: AbortSignal, under = ''): Promise<StoredObject[]> {
    const objects: StoredObject[] = [];
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
      throw storeError('list', `s3://${this.#bucket}/${this.#prefix}`, error);
    }
    return objects;
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const digests = (await this.list(signal, `${key}.`)).map((object) => object.key).filter((name) => name.endsWith('.sha256'));
    for (const name of [key, ...digests]) {
      try {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(name) }), { abortSignal: signal });
      } catch (error) {
        throw storeError('delete', this.#where(name), error);
      }
    }
  }

  close(): void {
    if (this.#ownsClient) this.#client.destroy();
  }
}
