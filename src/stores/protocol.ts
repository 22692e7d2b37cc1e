// The daemon protocol, spoken by `nix-build-cache serve` and DaemonStore: HTTP/1.1 on a Unix socket.
//   GET    /v1/object?key=K   200 the object's bytes | 404
//          with `Range: bytes=S-E`: 206 bytes S..E (fewer where the object ends before), from the
//          disk cache when it holds the object; a daemon that predates ranges answers 200, whole
//   PUT    /v1/object?key=K   201 once the upstream store holds it | 403 read-only | 413 too large
//   DELETE /v1/object?key=K   204 | 403
//   GET    /v1/list?under=P   200 JSON [{ key, size, modified }]
// Every answer carries `nbc-protocol: 1`; errors have a one-line text body. An object that fails
// half-way from upstream ends with the trailer `nbc-error: REASON` (or, from older daemons, a closed
// connection): the client then refuses what it read.

export const DAEMON_PROTOCOL = 1;
export const PROTOCOL_HEADER = 'nbc-protocol';
export const FAILURE_TRAILER = 'nbc-error';
/** The object's size where it is known before streaming (an answer sent chunked has no content-length). */
export const SIZE_HEADER = 'nbc-size';

export interface ListedObject {
  key: string;
  size: number;
  /** ISO 8601. */
  modified: string;
}

/** The one form of Range the daemon reads: bytes S-E, both inclusive. */
const RANGE = /^bytes=(\d+)-(\d+)$/;

/** [start, end) of a Range header, or undefined for none (or one of another form: the whole object is sent). */
export function parseRange(header: string | undefined): [start: number, end: number] | undefined {
  const match = header === undefined ? null : RANGE.exec(header);
  if (!match) return undefined;
  const [start, last] = [Number(match[1]), Number(match[2])];
  return Number.isSafeInteger(last) && start <= last ? [start, last + 1] : undefined;
}

export function objectPath(key: string): string {
  return `/v${DAEMON_PROTOCOL}/object?key=${encodeURIComponent(key)}`;
}

/** Resolves when `stream` can take more, or has closed (a writer then checks `destroyed`). */
export function drained(stream: NodeJS.WritableStream & { once(event: 'close' | 'drain', listener: () => void): unknown;
  off(event: 'close' | 'drain', listener: () => void): unknown; }): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}
