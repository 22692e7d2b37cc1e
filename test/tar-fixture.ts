import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { objectKey } from '../src/core/key.js';

/** One raw tar entry: written as given, so tests can make archives no honest packer would. */
export interface RawEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  data?: string | Buffer;
  linkpath?: string;
  mode?: number;
  mtime?: number;
}

export function rawTar(entries: readonly RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    const header = new Header({
      path: entry.path, type: entry.type ?? 'File', size: entry.type === undefined || entry.type === 'File' ? data.length : 0,
      mode: entry.mode ?? 0o644, mtime: new Date((entry.mtime ?? 1000) * 1000), linkpath: entry.linkpath ?? '',
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (header.size) blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** The meta files a valid archive ends with, for `files` files below the cache dirs. */
export function metaEntries(files: number, manifest = ''): RawEntry[] {
  const meta = {
    format: 2, toolVersion: 'test', cacheDirs: ['obj'], root: '/build', rooted: [], created: new Date(0).toISOString(), files, dirs: 0, bytes: 0, sources: 0,
  };
  return [
    { path: '.cache-meta/MD5SUMS', data: manifest }, { path: '.cache-meta/ARTIFACTS', data: '' },
    { path: '.cache-meta/meta.json', data: JSON.stringify(meta) },
  ];
}

/** Puts an archive where restore looks for `name` with cache dir obj and gzip. */
export function putArchive(store: string, name: string, archive: Buffer, cacheDirs = ['obj']): string {
  const path = join(store, objectKey(name, { cacheDirs, compression: 'gzip' }));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, archive);
  return path;
}

export const gzip = (data: Buffer): Buffer => gzipSync(data);
