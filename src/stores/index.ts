import { fileURLToPath } from 'node:url';
import { FileStore } from './file.js';
import type { S3Settings } from './s3.js';
import type { Store } from './store.js';

export type { Store, StoredBody, StoredObject } from './store.js';
export type { S3Settings } from './s3.js';

const S3_URL = /^s3:\/\/([^/]+)(?:\/(.*))?$/;
/** The form NIX_REMOTE uses: unix:///run/nix-build-cache/socket. */
const UNIX_URL = /^unix:\/\/(\/.*)$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Checks a store location: a directory, file://, s3://BUCKET[/PREFIX] or unix:///SOCKET. Returns the problem. */
export function checkStoreLocation(location: unknown): string | undefined {
  const got = `(got ${JSON.stringify(location)})`;
  if (typeof location === 'object' && location !== null) return undefined;
  if (typeof location !== 'string' || location === '') return `store: required ${got}`;
  const s3 = S3_URL.exec(location);
  if (s3) return BUCKET.test(s3[1]!) ? undefined : `store: not a valid S3 bucket name ${got}`;
  if (UNIX_URL.test(location)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith('file://')) {
    return `store: use a directory, file:///DIR, s3://BUCKET[/PREFIX] or unix:///SOCKET (a nix-build-cache serve daemon) ${got}`;
  }
  return undefined;
}

/**
 * Opens the store at a checked location; a Store object is used as it is. The AWS SDK is loaded
 * only for s3:// stores: it costs a tenth of a second of start-up that other runs need not pay.
 */
export async function openStore(location: string | Store, s3: S3Settings = {}): Promise<Store> {
  if (typeof location !== 'string') return location;
  const url = S3_URL.exec(location);
  if (url) {
    const { S3Store } = await import('./s3.js');
    return new S3Store(url[1]!, url[2] ?? '', s3);
  }
  const socket = UNIX_URL.exec(location);
  if (socket) {
    const { DaemonStore } = await import('./daemon.js');
    return new DaemonStore(socket[1]!, s3.socketTimeout);
  }
  return new FileStore(fileStorePath(location));
}

/** Whether a (checked) location names a directory rather than an S3 bucket or a daemon. */
export function isDirectoryStore(location: string): boolean {
  return location.startsWith('file://') || !/^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** The directory of a directory store's location (a path or file:///DIR). */
export function fileStorePath(location: string): string {
  return location.startsWith('file://') ? fileURLToPath(location) : location;
}
