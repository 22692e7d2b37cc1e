import { fileURLToPath } from 'node:url';
import { FileStore } from './file.js';
import type { Store } from './store.js';

export type { Store } from './store.js';

/** Checks a store location: a directory path or a file:// URL. Returns the problem, if any. */
export function checkStoreLocation(location: unknown): string | undefined {
  const got = `(got ${JSON.stringify(location)})`;
  if (typeof location !== 'string' || location === '') return `store: required ${got}`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith('file://')) {
    return `store: only directories and file:// URLs are supported ${got}`;
  }
  return undefined;
}

/** Opens the store at a checked location. */
export function openStore(location: string): Store {
  return new FileStore(location.startsWith('file://') ? fileURLToPath(location) : location);
}
