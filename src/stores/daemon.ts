// The store a sandboxed build uses: `nix-build-cache serve` on a Unix socket holds the credentials
// and the upstream store; the build talks HTTP to it over the socket (no network, no secrets).
import { request, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { describeError, StoreError } from '../core/errors.js';
import { DAEMON_PROTOCOL, drained, FAILURE_TRAILER, PROTOCOL_HEADER, SIZE_HEADER, objectPath, type ListedObject } from './protocol.js';
import { rangeOf } from './range.js';
import type { Store, StoredBody, StoredObject } from './store.js';

const HINT = 'is nix-build-cache serve running, and its socket\'s directory in extra-sandbox-paths?';

/** A store served by `nix-build-cache serve` at a Unix socket. */
export class DaemonStore implements Store {
  readonly location: string;
  readonly #socket: string;
  readonly #timeout: number;

  /** `timeout`: milliseconds a request may sit idle. */
  constructor(socket: string, timeout = 10_000) {
    this.#socket = socket;
    this.#timeout = timeout;
    this.location = `unix://${socket}`;
  }

  #request(operation: string, key: string | undefined, method: string, path: string, signal?: AbortSignal, headers: Record<string, string> = {}): {
    sent: ReturnType<typeof request>; answer: Promise<IncomingMessage>;
  } {
    const sent = request({ socketPath: this.#socket, method, path, headers, timeout: this.#timeout, ...(signal ? { signal } : {}) });
    const answer = new Promise<IncomingMessage>((resolve, reject) => {
      sent.on('response', (response) => {
        const version = response.headers[PROTOCOL_HEADER];
        if (version !== String(DAEMON_PROTOCOL)) {
          response.resume();
          reject(new StoreError(operation, key, `the daemon speaks protocol ${String(version)}, this client ${DAEMON_PROTOCOL}`));
        } else resolve(response);
      });
      sent.on('timeout', () => sent.destroy(new Error(`no answer for ${this.#timeout / 1000} s`)));
      sent.on('error', (error) => reject(error instanceof StoreError ? error
        : new StoreError(operation, key ?? this.location, describeError(error), { hint: HINT, cause: error })));
    });
    return { sent, answer };
  }

  /** The answer's body as text, and a StoreError for anything but `ok`. */
  async #expect(operation: string, key: string | undefined, response: IncomingMessage, ok: number[]): Promise<string> {
    let text = '';
    for await (const chunk of response) text += (chunk as Buffer).toString();
    if (!ok.includes(response.statusCode ?? 0)) {
      throw new StoreError(operation, key, text.trim() || `HTTP ${response.statusCode}`, { status: response.statusCode ?? 0 });
    }
    return text;
  }

  async get(key: string, signal?: AbortSignal): Promise<StoredBody | undefined> {
    const { sent, answer } = this.#request('read', key, 'GET', objectPath(key), signal);
    sent.end();
    const response = await answer;
    if (response.statusCode === 404) {
      response.resume();
      return undefined;
    }
    if (response.statusCode !== 200) await this.#expect('read', key, response, [200]);
    const size = Number(response.headers[SIZE_HEADER] ?? response.headers['content-length'] ?? NaN);
    return Object.assign((async function* () {
      try {
        for await (const chunk of response) yield chunk as Buffer;
      } catch (error) {
        throw new StoreError('read', key, `the daemon stopped sending the object (${describeError(error)}); its log says why`, { cause: error });
      }
      // The daemon ends an answer it could not finish (a failed download or digest check) with a trailer.
      const failure = response.trailers[FAILURE_TRAILER];
      if (failure !== undefined) throw new StoreError('read', key, `the daemon could not finish the object: ${failure}`);
    })(), Number.isFinite(size) ? { size } : {});
  }

  async getRange(key: string, start: number, end: number, signal?: AbortSignal, into?: Buffer, filled?: (bytes: number) => void): Promise<Buffer | undefined> {
    if (end <= start) return Buffer.alloc(0);
    const { sent, answer } = this.#request('read', key, 'GET', objectPath(key), signal, { range: `bytes=${start}-${end - 1}` });
    sent.end();
    const response = await answer;
    if (response.statusCode === 404) {
      response.resume();
      return undefined;
    }
    if (response.statusCode !== 206 && response.statusCode !== 200) await this.#expect('read', key, response, [206]);
    try {
      // 200: a daemon that predates ranges sends the whole object.
      const [from, to] = response.statusCode === 206 ? [0, end - start] : [start, end];
      const data = await rangeOf(response as AsyncIterable<Buffer>, from, to, into, filled);
      response.destroy();
      return data;
    } catch (error) {
      throw new StoreError('read', key, `the daemon stopped sending the object (${describeError(error)}); its log says why`, { cause: error });
    }
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }> {
    const { sent, answer } = this.#request('write', key, 'PUT', objectPath(key), signal);
    let bytes = 0;
    const sending = (async () => {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (!sent.write(chunk)) await drained(sent);
        if (sent.destroyed) throw new Error('the daemon closed the connection');
      }
      sent.end();
    })();
    try {
      // The daemon may answer (a refusal) before the whole body is sent.
      const response = await Promise.race([answer, sending.then(() => answer)]);
      await this.#expect('write', key, response, [201]);
      await sending;
      return { bytes };
    } catch (error) {
      sent.destroy();
      body.destroy();
      await sending.catch(() => {});
      throw error instanceof StoreError ? error : new StoreError('write', key, describeError(error), { hint: HINT, cause: error });
    }
  }

  async list(signal?: AbortSignal, under = ''): Promise<StoredObject[]> {
    const { sent, answer } = this.#request('list', undefined, 'GET', `/v${DAEMON_PROTOCOL}/list?under=${encodeURIComponent(under)}`, signal);
    sent.end();
    const listed = JSON.parse(await this.#expect('list', this.location, await answer, [200])) as ListedObject[];
    return listed.map((object) => ({ key: object.key, size: object.size, modified: new Date(object.modified) }));
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const { sent, answer } = this.#request('delete', key, 'DELETE', objectPath(key), signal);
    sent.end();
    await this.#expect('delete', key, await answer, [204]);
  }

  close(): void {}
}
