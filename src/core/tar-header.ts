import { createRequire } from 'node:module';
import type { HeaderData } from 'tar';
import { BLOCK_SIZE, encodeUstarHeader, type UstarFields } from './ustar.js';

/** node-tar, loaded the first time an entry does not fit ustar: loading it costs 16 ms, and most runs never need it. */
let nodeTar: typeof import('tar') | undefined;
const loadTar = () => (nodeTar ??= createRequire(import.meta.url)('tar') as typeof import('tar'));

/**
 * An entry's header blocks as node-tar writes portable ones: the fast ustar encoding (into `block`,
 * which is returned) where the entry fits it, else node-tar's Header with a PAX header before it
 * for a long or non-ASCII name.
 */
export function tarHeader(fields: UstarFields, block: Buffer = Buffer.alloc(BLOCK_SIZE)): Buffer {
  if (encodeUstarHeader(fields, block)) return block;
  const { mtime, ...rest } = fields;
  const data: HeaderData = { ...rest, ...(mtime === undefined ? {} : { mtime: new Date(mtime * 1000) }) };
  const { Header, Pax } = loadTar();
  const entry = new Header(data);
  if (!entry.encode()) return entry.block!;
  return Buffer.concat([new Pax({ path: data.path, linkpath: data.linkpath, size: data.size, mtime: data.mtime }).encode(), entry.block!]);
}
