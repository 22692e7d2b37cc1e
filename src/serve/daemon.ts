// `nix-build-cache serve`: the host daemon for sandboxed builds. It listens on a Unix socket (whose
// directory the builds get through extra-sandbox-paths), holds the upstream store and its
// credentials, and keeps a size-capped disk cache, so builds need neither network nor secrets.
import { createReadStream } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { megabytes } from '../core/units.js';
import { describeError } from '../core/errors.js';
import { isPackKey } from '../core/key.js';
import { DAEMON_PROTOCOL, drained, FAILURE_TRAILER, parseRange, PROTOCOL_HEADER, SIZE_HEADER, type ListedObject } from '../stores/protocol.js';
import { readRange } from '../stores/range.js';
import type { Store } from '../stores/store.js';
import { DiskCache, type CachedMeta } from './disk-cache.js';
import { loadPeerCredentials, mayWrite, peerOf, type Peer, type WritePolicy } from './peer.js';

export interface ServeOptions {
  /** Path of the Unix socket. Its directory is created (0755) if missing. */
  socket: string;
  upstream: Store;
  /** Group (name or gid) that may connect: the socket is 0660 of that group. Default: nixbld, if it exists. */
  socketGroup?: string;
  /** Keep objects on local disk here, at most `maxDisk` bytes. Default: no disk cache. */
  diskCache?: string;
  maxDisk?: number;
  /** Refuse writes and deletes. */
  readOnly?: boolean;
  /** Refuse objects larger than this many bytes. */
  maxObjectSize?: number;
  /** Only these users and groups may save and delete (needs the peercred addon). Default: all who can connect. */
  writers?: WritePolicy;
  /** One line per request. */
  log: (line: string) => void;
}

export interface Daemon {
  close(): Promise<void>;
}

/** The gid of a group name from /etc/group, or the number given. */
async function groupId(group: string): Promise<number | undefined> {
  if (/^\d+$/.test(group)) return Number(group);
  const lines = await readFile('/etc/group', 'utf8').catch(() => '');
  const entry = lines.split('\n').map((line) => line.split(':')).find((fields) => fields[0] === group);
  return entry ? Number(entry[2]) : undefined;
}

/** Removes a socket file left by a daemon that died; refuses one a live daemon listens on. */
async function clearStaleSocket(path: string): Promise<void> {
  const existing = await lstat(path).catch(() => undefined);
  if (!existing) return;
  if (!existing.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another daemon listens on ${path}`);
  await unlink(path);
}

function answer(res: ServerResponse, status: number, text = ''): void {
  res.writeHead(status, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), 'content-type': 'text/plain' });
  res.end(text ? `${text}\n` : '');
}

/** What the upstream store lists for exactly `key`; undefined when absent. */
async function upstreamMeta(upstream: Store, key: string): Promise<CachedMeta | undefined> {
  const found = (await upstream.list(undefined, key)).find((object) => object.key === key);
  return found ? { key, size: found.size, modified: found.modified.toISOString() } : undefined;
}

/** A client sent more than --max-object-size. */
class TooLarge extends Error {}

/** The TooLarge behind an error (an upstream store wraps what its body stream threw), if any. */
function tooLarge(error: unknown): TooLarge | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) if (cause instanceof TooLarge) return cause;
  return undefined;
}

export async function serve(options: ServeOptions): Promise<Daemon> {
  const { upstream, log } = options;
  const credentials = loadPeerCredentials();
  if (options.writers && !credentials) {
    throw new Error('--writer needs the peer-credentials addon, which was not built (npm run build:native needs a C compiler and python3)');
  }
  const cache = options.diskCache ? new DiskCache(options.diskCache, options.maxDisk ?? 10 * 2 ** 30) : undefined;
  await cache?.prepare();

  async function get(key: string, res: ServerResponse): Promise<string> {
    let meta: CachedMeta | undefined;
    let upstreamProblem: string | undefined;
    try {
      meta = await upstreamMeta(upstream, key);
    } catch (error) {
      upstreamProblem = describeError(error);
    }
    const cached = await cache?.meta(key);
    if (cached && (upstreamProblem !== undefined || (meta && meta.size === cached.size && meta.modified === cached.modified))) {
      const stream = await cache!.open(key);
      if (stream) {
        res.writeHead(200, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), 'content-length': cached.size });
        stream.on('error', () => res.destroy());
        stream.pipe(res);
        await new Promise((resolve) => res.on('close', resolve));
        return `200 ${megabytes(cached.size)} from disk${upstreamProblem ? ` (upstream: ${upstreamProblem})` : ''}`;
      }
    }
    if (!meta && upstreamProblem === undefined) {
      if (cached) await cache!.drop(key);
      answer(res, 404, 'no such object');
      return '404';
    }
    // A listing that failed (a policy allowing reads only, say) leaves the read itself to answer:
    // a miss stays a miss. Such an object is not cached (nothing to compare it with next time).
    const body = await upstream.get(key);
    const unlisted = upstreamProblem === undefined ? '' : ` (upstream listing: ${upstreamProblem})`;
    if (!body) {
      answer(res, 404, 'no such object');
      return `404${unlisted}`;
    }
    const writer = meta && await cache?.writer(key);
    // Chunked, with a trailer that says why when the upstream object fails half-way (a digest mismatch).
    res.writeHead(200, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), trailer: FAILURE_TRAILER,
      ...(body.size === undefined ? {} : { [SIZE_HEADER]: String(body.size) }) });
    let bytes = 0;
    try {
      for await (const chunk of body) {
        bytes += chunk.length;
        await writer?.write(chunk);
        if (!res.write(chunk)) await drained(res);
        if (res.destroyed) throw new Error('the client went away');
      }
      if (meta) await writer?.commit({ ...meta, size: bytes });
      res.end();
      return `200 ${megabytes(bytes)} from upstream${unlisted}`;
    } catch (error) {
      await writer?.abort();
      // Headers are out: the trailer tells the client why the body is incomplete; a client that went
      // away gets the connection closed.
      if (res.destroyed) res.destroy();
      else {
        res.addTrailers({ [FAILURE_TRAILER]: describeError(error).replace(/[\r\n]+/g, ' ') });
        res.end();
      }
      throw error;
    }
  }

  /**
   * Bytes [start, end) of an object: a pack (never rewritten, its name is a nonce) from the disk
   * cache when it is there, anything else by upstream's ranged read. A range is not cached: caching
   * would mean reading the whole pack.
   */
  async function getRange(key: string, [start, end]: [number, number], res: ServerResponse): Promise<string> {
    const cached = isPackKey(key) ? await cache?.meta(key) : undefined;
    if (cached) {
      const last = Math.max(Math.min(end, cached.size), start);
      const stream = last > start ? await cache!.open(key, [start, last]) : undefined;
      if (stream || last === start) {
        res.writeHead(206, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), 'content-length': last - start });
        if (!stream) {
          res.end();
          return '206 0 MB from disk';
        }
        stream.on('error', () => res.destroy());
        stream.pipe(res);
        await new Promise((resolve) => res.on('close', resolve));
        return `206 ${megabytes(last - start)} from disk`;
      }
    }
    const data = await readRange(upstream, key, start, end);
    if (!data) {
      answer(res, 404, 'no such object');
      return '404';
    }
    res.writeHead(206, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), 'content-length': data.length });
    res.end(data);
    return `206 ${megabytes(data.length)} from upstream`;
  }

  /** Why this peer may not save or delete, if it may not. */
  function writeRefusal(peer: Peer | undefined): string | undefined {
    if (options.readOnly) return 'this daemon is read-only';
    if (options.writers && !(peer && mayWrite(options.writers, peer))) return `uid ${peer?.uid ?? '?'} may not write to this daemon (its --writer list)`;
    return undefined;
  }

  async function put(key: string, req: IncomingMessage, res: ServerResponse): Promise<string> {
    const limit = options.maxObjectSize ?? Infinity;
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      answer(res, 413, `objects are limited to ${limit} bytes`);
      return '413';
    }
    let bytes = 0;
    const counted = async function* () {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > limit) throw new TooLarge(`objects are limited to ${limit} bytes`);
        yield chunk;
      }
    };
    // With a disk cache the body lands there first (bounded memory, and the next restore reads it
    // from disk); without, it streams straight to the upstream store.
    const writer = await cache?.writer(key);
    try {
      if (writer) {
        for await (const chunk of counted()) await writer.write(chunk);
        await upstream.put(key, createReadStream(writer.path, { highWaterMark: 1 << 20 }), undefined, bytes);
        const meta = await upstreamMeta(upstream, key);
        if (meta) await writer.commit(meta);
        else await writer.abort();
      } else {
        await upstream.put(key, Readable.from(counted()));
      }
    } catch (error) {
      await writer?.abort();
      const refused = tooLarge(error);
      const [status, reason] = refused ? [413, refused.message] : [502, describeError(error)];
      answer(res, status, reason);
      return `${status} ${reason}`;
    }
    answer(res, 201);
    return `201 ${megabytes(bytes)}`;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, peer: Peer | undefined): Promise<string> {
    const url = new URL(req.url ?? '/', 'http://daemon');
    const key = url.searchParams.get('key') ?? '';
    if (url.pathname === `/v${DAEMON_PROTOCOL}/list` && req.method === 'GET') {
      const listed: ListedObject[] = (await upstream.list(undefined, url.searchParams.get('under') ?? ''))
        .map((o) => ({ key: o.key, size: o.size, modified: o.modified.toISOString() }));
      res.writeHead(200, { [PROTOCOL_HEADER]: String(DAEMON_PROTOCOL), 'content-type': 'application/json' });
      res.end(JSON.stringify(listed));
      return `200 ${listed.length} objects`;
    }
    if (url.pathname !== `/v${DAEMON_PROTOCOL}/object` || key === '') {
      answer(res, 400, `unknown request ${req.method} ${url.pathname} (this daemon speaks protocol ${DAEMON_PROTOCOL})`);
      return '400';
    }
    if (req.method === 'GET') {
      const range = parseRange(req.headers.range);
      return range ? getRange(key, range, res) : get(key, res);
    }
    if (req.method === 'PUT' || req.method === 'DELETE') {
      const refusal = writeRefusal(peer);
      if (refusal !== undefined) {
        req.resume();
        answer(res, 403, refusal);
        return `403 ${refusal}`;
      }
    }
    if (req.method === 'PUT') return put(key, req, res);
    if (req.method === 'DELETE') {
      await upstream.delete(key);
      await cache?.drop(key);
      answer(res, 204);
      return '204';
    }
    answer(res, 405, `${req.method} is not allowed`);
    return '405';
  }

  const server: Server = createServer((req, res) => {
    const started = Date.now();
    const what = `${req.method} ${new URL(req.url ?? '/', 'http://daemon').searchParams.get('key') ?? req.url}`;
    let peer: Peer | undefined;
    const asked = credentials ? peerOf(req.socket, credentials).then((found) => { peer = found; }, () => {}) : Promise.resolve();
    asked.then(() => handle(req, res, peer)).then((result) => result, (error: unknown) => {
      if (!res.headersSent) answer(res, 502, describeError(error));
      else res.destroy();
      return `502 ${describeError(error)}`;
    }).then((result) => log(`${what} ${result} ${((Date.now() - started) / 1000).toFixed(2)} s${peer ? ` uid ${peer.uid}` : ''}`));
  });

  await mkdir(dirname(options.socket), { recursive: true, mode: 0o755 });
  await clearStaleSocket(options.socket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socket, resolve);
  });
  const gid = await groupId(options.socketGroup ?? 'nixbld');
  if (gid !== undefined) await chown(options.socket, -1, gid);
  else if (options.socketGroup !== undefined) log(`no group ${options.socketGroup}: the socket stays in the daemon's group`);
  await chmod(options.socket, 0o660);
  return {
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await unlink(options.socket).catch(() => {});
    },
  };
}
