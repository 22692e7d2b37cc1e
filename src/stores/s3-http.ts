// The HTTP side of the S3 store: a handler patient with multipart completion, downloads that end
// when idle or aborted, small bodies read within a limit, and SDK errors as one-line StoreErrors.
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type * as HttpHandler from '@smithy/node-http-handler';
import { describeError, NbcError, StoreError } from '../core/errors.js';

// require(), as s3.ts loads the SDK: the CommonJS modules load faster so.
const require = createRequire(import.meta.url);
const { NodeHttpHandler } = require('@smithy/node-http-handler') as typeof HttpHandler;

/**
 * Completing a multipart upload, the server assembles the object before it answers: S3 says this
 * can take minutes (it sends blank lines meanwhile), s3rver copies every part and stays silent. The
 * socket timeout would cut that short, the SDK retry the completion, and the upload fail although
 * the object appears; so completion alone may stay silent this long.
 */
const COMPLETION_TIMEOUT = 5 * 60_000;

export class PatientCompletionHandler extends NodeHttpHandler {
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

/** Pointers and digests are small; a server sending more is not to be believed (nor buffered). */
const SMALL_OBJECT_LIMIT = 4096;

/** A small object's text; undefined when it is larger than SMALL_OBJECT_LIMIT. */
export async function smallText(body: AsyncIterable<Buffer>): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > SMALL_OBJECT_LIMIT) {
      (body as Readable).destroy?.();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString();
}

export function statusOf(error: unknown): number | undefined {
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

/**
 * Turns an SDK or network error into a one-line StoreError; credentials are never part of it (a
 * server that echoes our request in its message: the known `secrets` and what looks like one go).
 */
export function storeError(operation: string, where: string, error: unknown, secrets: readonly (string | undefined)[]): NbcError {
  // Ours already (an archive refused, a deadline passed): as it is.
  if (error instanceof NbcError) return error;
  const status = statusOf(error);
  const name = (error as Error).name;
  const text = describeError(error);
  const message = name && name !== 'Error' && !text.includes(name) ? `${name}: ${text}` : text;
  return new StoreError(operation, where, message || name || 'unknown error',
    { ...(status === undefined ? {} : { status }), hint: hintFor(error, status), cause: error, secrets });
}

/**
 * Throws a TimeoutError if the stream gives nothing for `ms` (a stalled download must end), and
 * the signal's reason as soon as it is aborted (a download trickling past the deadline).
 */
export async function* withIdleTimeout(body: Readable, ms: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => body.destroy(Object.assign(new Error(`no data for ${ms} ms`), { name: 'TimeoutError' })), ms);
  };
  const onAbort = () => body.destroy(signal?.reason as Error);
  signal?.addEventListener('abort', onAbort);
  try {
    signal?.throwIfAborted();
    arm();
    for await (const chunk of body) {
      arm();
      yield chunk as Buffer;
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
