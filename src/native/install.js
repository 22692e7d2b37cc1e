// The package's install script: builds the native addons (the SIMD hasher md5.c, peercred.c for
// serve --writer, zstd.c for the blob layout's compressed packs) with node-gyp and never fails the
// install. Without libzstd's headers the others are built alone; without a C compiler, python3 or
// Node's headers, none: hashing then uses node:crypto and serve refuses --writer.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const env = { ...process.env };
// node-gyp downloads Node's headers from nodejs.org unless told where they are, but Node's own
// tarballs and most distributions' packages install them beside bin/node, for this very Node.
const prefix = dirname(dirname(process.execPath));
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_version.h'))) env.npm_config_nodedir = prefix;

const build = (...args) => spawnSync('node-gyp', ['rebuild', ...args], { stdio: 'inherit', env }).status === 0;
if (build()) process.exit(0);
if (build('--', '-Dzstd=0')) {
  console.log("nix-build-cache: the zstd addon did not build (it needs libzstd's headers: libzstd-dev, or nixpkgs' zstd); the blob layout stores blobs uncompressed and cannot restore compressed ones");
} else {
  console.log("nix-build-cache: the native addons did not build (they need a C compiler, python3 and Node's headers); hashing uses node:crypto, serve --writer is unavailable, and the blob layout stores blobs uncompressed");
}
