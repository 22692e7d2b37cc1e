import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Compression } from '../src/core/config.js';
import { objectKey } from '../src/core/key.js';
import { restore } from '../src/restore.js';
import { S3Store } from '../src/stores/s3.js';
import { tempDir, writeTree } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';
import { metaEntries, rawTar } from './tar-fixture.js';

// File descriptors a refused restore leaves open (#15 item 10): counted in this process, before and
// after restores whose archives are refused at every stage (detection, decompression, the entries),
// from a directory store and from S3 (whose connections are descriptors too).
const test = suite('a refused archive leaves no file descriptor open');
let work: string;
let remove: () => Promise<void>;
let s3: TestS3;
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
  s3 = await startS3('leaks');
});
test.after(async () => {
  await s3.close();
  await remove();
});

/** Socket inodes whose local port is `port` (the in-process S3 server's side of its connections). */
function serverSockets(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && parseInt(fields[1]!.split(':')[1]!, 16) === port) inodes.add(fields[9]!);
    }
  }
  return inodes;
}

/**
 * This process's descriptors, less the S3 server's side of its connections: s3rver runs in this
 * process and closes its side only when it reads the client's close, a moment later.
 */
function openDescriptors(): number {
  const server = serverSockets(s3.port);
  return readdirSync('/proc/self/fd').filter((fd) => {
    const target = (() => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } })();
    return !server.has(/^socket:\[(\d+)\]$/.exec(target)?.[1] ?? '');
  }).length;
}
const GOOD = [{ path: 'obj/', type: 'Directory' as const }, { path: 'obj/a.o', data: 'object a' }];
const zstd = (data: Buffer) => execFileSync('zstd', ['-q', '-c'], { input: data, maxBuffer: 1 << 30 });

const S3_SETTINGS = () => ({ endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });

/** Stores `object` as the cache `main` (in a directory store, or on S3) and restores it in this process. */
async function restoreObject(compression: Compression, object: Buffer, kind: 'file' | 's3' = 'file'): Promise<{ warnings: string[]; outcome: string }> {
  const top = await mkdtemp(join(work, 'build-'));
  const root = join(top, 'source');
  writeTree(root, { 'main.c': 'int main;\n' });
  const key = objectKey('main', { cacheDirs: ['obj'], compression });
  let store = join(top, 'store');
  if (kind === 'file') {
    mkdirSync(dirname(join(store, key)), { recursive: true });
    writeFileSync(join(store, key), object);
  } else {
    const prefix = top.split('/').pop()!;
    const s3Store = new S3Store(s3.bucket, prefix, S3_SETTINGS());
    await s3Store.put(key, Readable.from([object]));
    s3Store.close();
    store = `s3://${s3.bucket}/${prefix}`;
  }
  const report = await restore({
    store, s3: S3_SETTINGS(), cacheName: 'main', cacheDirs: ['obj'], compression, root, stateDir: join(top, 'state'), threads: 1,
  });
  return { warnings: report.warnings, outcome: report.outcome };
}

// More than the ring and the streams buffer, so that a refusal comes before the source has been read through.
const big = () => randomBytes(24 << 20);
const CASES: [string, Compression, () => Buffer, RegExp][] = [
  ['not an archive at all (refused from its first bytes)', 'gzip', () => Buffer.concat([Buffer.from('<html>'), big()]), /not a tar archive, nor a compressed one/],
  ['an empty object', 'gzip', () => Buffer.alloc(0), /the archive is empty/],
  ['gzip: a hostile first entry, with megabytes behind it', 'gzip',
    () => gzipSync(rawTar([{ path: '../evil', data: 'x' }, { path: 'obj/big', data: big() }])), /absolute path or "\.\."/],
  ['zstd: a hostile first entry, with megabytes behind it', 'zstd',
    () => zstd(rawTar([{ path: '/etc/evil', data: 'x' }, { path: 'obj/big', data: big() }])), /absolute path or "\.\."/],
  ['none: a hostile first entry, with megabytes behind it', 'none',
    () => rawTar([{ path: 'src/evil.c', data: 'x' }, { path: 'obj/big', data: big() }]), /outside the cache dirs/],
  ['zstd: a second compression layer', 'zstd', () => Buffer.concat([zstd(gzipSync(big()))]), /not a tar archive inside the zstd compression/],
  ['gzip: damaged half-way', 'gzip', () => {
    const data = gzipSync(rawTar([...GOOD, { path: 'obj/big', data: big() }, ...metaEntries(2)]));
    data.fill(0x55, data.length >> 1, (data.length >> 1) + 64);
    return data;
  }, /cannot decompress|damaged/],
  ['zstd: garbage after the tar', 'zstd', () => Buffer.concat([zstd(rawTar([...GOOD, ...metaEntries(1)])), zstd(big())]), /after the end of the tar archive/],
];

for (const kind of ['file', 's3'] as const) {
  for (const [name, compression, object, warning] of kind === 'file' ? CASES : CASES.filter(([n]) => /first bytes|hostile first/.test(n))) {
    test(`${kind}: ${name}`, async () => {
      const data = object();
      // A first restore loads what stays loaded (the worker module, the SDK).
      await restoreObject(compression, data, kind);
      const before = openDescriptors();
      const { warnings, outcome } = await restoreObject(compression, data, kind);
      assert.is(outcome, 'miss');
      assert.is(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, warning);
      // Fewer is no leak: what the first restore's pool thread held may close only now.
      const after = openDescriptors();
      assert.ok(after <= before, `${after} descriptors open after the restore, ${before} before`);
    });
  }
}

test.run();
