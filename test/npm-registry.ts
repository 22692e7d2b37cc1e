import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

// An npm registry on 127.0.0.1 serving the packages of a package-lock.json from the local npm
// cache (filled by `npm ci`), so that `npm install` resolves as against registry.npmjs.org but
// without the network. Each version's packument entry is its lock entry plus `dist`.

interface LockEntry {
  name?: string;
  version: string;
  integrity: string;
  [field: string]: unknown;
}

export interface TestRegistry {
  url: string;
  close: () => Promise<void>;
}

/** Where cacache keeps the content with this integrity (`sha512-<base64>`). */
function cachedContent(cache: string, integrity: string): string {
  const [algorithm, digest] = integrity.split('-', 2) as [string, string];
  const hex = Buffer.from(digest, 'base64').toString('hex');
  return join(cache, '_cacache', 'content-v2', algorithm, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
}

export async function startRegistry(lockPath: string, cache: string): Promise<TestRegistry> {
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as { packages: Record<string, LockEntry> };
  const packuments = new Map<string, { name: string; versions: Record<string, unknown>; 'dist-tags': Record<string, string> }>();
  const tarballs = new Map<string, string>();
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname.slice(1));
    const tarball = tarballs.get(path);
    const packument = packuments.get(path);
    try {
      if (tarball) response.end(readFileSync(cachedContent(cache, tarball)));
      else if (packument) response.setHeader('content-type', 'application/json').end(JSON.stringify(packument));
      else response.writeHead(404).end('{}');
    } catch (error) {
      response.writeHead(500).end(`${path}: not in the npm cache (run npm ci): ${(error as Error).message}`);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!key.includes('node_modules/')) continue;
    const name = entry.name ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const file = `${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
    tarballs.set(file, entry.integrity);
    const { resolved: _resolved, integrity, dev: _dev, optional: _optional, ...manifest } = entry;
    const packument = packuments.get(name) ?? { name, versions: {}, 'dist-tags': {} };
    packument.versions[entry.version] = { ...manifest, name, dist: { tarball: url + file, integrity } };
    packument['dist-tags'].latest = entry.version;
    packuments.set(name, packument);
  }
  return {
    url,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
