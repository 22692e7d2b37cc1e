// The package's install script: builds the native addons (the SIMD hasher md5.c, and peercred.c for
// serve --writer) with node-gyp and never fails the install; without a C compiler, python3 or Node's
// headers, hashing uses node:crypto instead and serve refuses --writer.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const env = { ...process.env };
// node-gyp downloads Node's headers from nodejs.org unless told where they are, but Node's own
// tarballs and most distributions' packages install them beside bin/node, for this very Node.
const prefix = dirname(dirname(process.execPath));
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_version.h'))) env.npm_config_nodedir = prefix;

const build = spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', env });
if (build.status !== 0) {
  console.log("nix-build-cache: the native addons did not build (they need a C compiler, python3 and Node's headers); hashing uses node:crypto, and serve --writer is unavailable");
}
