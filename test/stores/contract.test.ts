// One contract, every store: the directory store, S3 (s3rver on 127.0.0.1), and the daemon over
// a Unix socket in front of each: put/get/list/delete, racing and aborted writes, missing objects,
// refused writes, and damaged objects (through restore: a store with digests refuses them as it
// reads, the directory store leaves it to the archive's own checksums). A new store passes these cases by adding one line to STORES.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../src/core/errors.js';
import { restore } from '../../src/restore.js';
import { save } from '../../src/save.js';
import { serve, type Daemon } from '../../src/serve/daemon.js';
import { DaemonStore } from '../../src/stores/daemon.js';
import { FileStore } from '../../src/stores/file.js';
import { S3Store } from '../../src/stores/s3.js';
import type { Store } from '../../src/stores/store.js';
import { tempDir, writeTree } from '../helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from '../s3-server.js';

let dir: string;
let remove: () => Promise<void>;
let s3: TestS3;
const daemons: Daemon[] = [];
let prefixes = 0;

const s3Store = (prefix: string, accessKeyId = ACCESS_KEY_ID) =>
  new S3Store(s3.bucket, prefix, { endpoint: s3.endpoint, credentials: { accessKeyId, secretAccessKey: 'x' }, maxAttempts: 1 });

/** A daemon in front of `upstream` (an in-process `serve`), and the client store that talks to it. */
async function daemonFor(upstream: Store, options: { readOnly?: boolean } = {}): Promise<Store> {
  const socket = join(dir, `daemon-${daemons.length}`, 'socket');
  daemons.push(await serve({ socket, upstream, log: () => {}, ...options }));
  return new DaemonStore(socket);
}

interface StoreKind {
  name: string;
  /** A fresh, empty store. */
  make(): Promise<Store>;
  /** A fresh store, and how to damage an object where it rests (bytes flipped in the middle, same size). */
  damageable(): Promise<{ store: Store; damage: (key: string) => Promise<void> }>;
  /** A store that refuses writes, and the message that says so. */
  denied(): Promise<{ store: Store; says: RegExp }>;
}

/** Flips 64 bytes in the middle of each file, as bit rot or a bad copy would. */
function flipMiddle(files: string[]): void {
  assert.ok(files.length > 0, 'there is an object to damage');
  for (const file of files) {
    const bytes = readFileSync(file);
    for (let i = 0; i < 64; i++) bytes[(bytes.length >> 1) + i] ^= 0xff;
    writeFileSync(file, bytes);
  }
}

/** Files below `root` whose path passes `test`. */
const filesBelow = (root: string, test: (path: string) => boolean) =>
  (readdirSync(root, { recursive: true }) as string[]).map((name) => join(root, name)).filter((path) => statSync(path).isFile() && test(path));

const fileKind: StoreKind = {
  name: 'directory',
  make: async () => new FileStore(join(dir, `file-${++prefixes}`)),
  damageable: async () => {
    const root = join(dir, `file-${++prefixes}`);
    return { store: new FileStore(root), damage: async (key) => flipMiddle([join(root, key)]) };
  },
  denied: async () => {
    // root ignores permission bits: a file where the store needs a directory is refused for everyone.
    const file = join(dir, `not-a-dir-${++prefixes}`);
    writeFileSync(file, '');
    return { store: new FileStore(join(file, 'store')), says: /write .* failed: ENOTDIR/ };
  },
};
const s3Kind: StoreKind = {
  name: 'S3',
  make: async () => s3Store(`contract-${++prefixes}`),
  damageable: async () => {
    const prefix = `damaged-${++prefixes}`;
    // s3rver keeps each object's bytes in a file of its own: the archive objects' are damaged, not the pointer's.
    const damage = async () => flipMiddle(filesBelow(s3.directory, (path) => path.includes(`/${prefix}/`) && /\.tar\.zst\._S3rver_object$/.test(path)
      && statSync(path).size > 4096));
    return { store: s3Store(prefix), damage };
  },
  denied: async () => ({ store: s3Store(`denied-${++prefixes}`, 'UNKNOWN-KEY'), says: /HTTP 403.*check the credentials/ }),
};
const STORES: StoreKind[] = [
  fileKind,
  s3Kind,
  ...[fileKind, s3Kind].map((upstream): StoreKind => ({
    name: `daemon before ${upstream.name}`,
    make: async () => daemonFor(await upstream.make()),
    damageable: async () => {
      const { store, damage } = await upstream.damageable();
      return { store: await daemonFor(store), damage };
    },
    denied: async () => ({ store: await daemonFor(await upstream.make(), { readOnly: true }), says: /HTTP 403.*read-only/ }),
  })),
];

async function bytesOf(stream: AsyncIterable<Buffer> | undefined): Promise<Buffer | undefined> {
  if (!stream) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const body = (...parts: (string | Buffer)[]) => Readable.from(parts.map((part) => Buffer.from(part)));

async function rejects(promise: Promise<unknown>, says: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, StoreError);
    assert.match((error as Error).message, says);
    return;
  }
  assert.unreachable(`should have failed with ${says}`);
}

for (const kind of STORES) {
  const test = suite(`store contract: ${kind.name}`);
  test.before(async () => {
    ({ dir, remove } = await tempDir('nbc-contract-'));
    s3 = await startS3('nbc-contract');
  });
  test.after(async () => {
    for (const daemon of daemons.splice(0)) await daemon.close();
    await s3.close();
    await remove();
  });

  test('put, get, list and delete; a missing object is undefined, deleting it is no error', async () => {
    const store = await kind.make();
    const big = Buffer.alloc(3 << 20, 'x');
    assert.is((await store.put('repo/main/v2-a.tar.zst', body('hello ', big, 'world'))).bytes, big.length + 11);
    const got = await store.get('repo/main/v2-a.tar.zst');
    assert.is(got?.size, big.length + 11, 'the size is known before the bytes are read (progress shows an ETA)');
    assert.equal(await bytesOf(got), Buffer.concat([Buffer.from('hello '), big, Buffer.from('world')]));
    assert.is(await store.get('repo/main/v2-missing.tar.zst'), undefined);
    const listed = (await store.list(undefined, 'repo/')).filter((o) => o.key.endsWith('.tar.zst'));
    assert.equal(listed.map((o) => [o.key, o.size]), [['repo/main/v2-a.tar.zst', big.length + 11]]);
    await store.delete('repo/main/v2-a.tar.zst');
    await store.delete('repo/main/v2-a.tar.zst');
    assert.is(await store.get('repo/main/v2-a.tar.zst'), undefined);
    assert.equal((await store.list(undefined, 'repo/')).filter((o) => o.key.endsWith('.tar.zst')), []);
  });

  test('concurrent puts to one name, many rounds: a reader always gets one of them whole', async () => {
    const store = await kind.make();
    for (let round = 0; round < 12; round++) {
      // Different sizes, so that a pointer or object torn between writers cannot pass for one of them.
      const versions = ['a', 'b', 'c'].map((letter, i) => Buffer.alloc((1 << 20) + i * 1000 + round, `${letter}${round}`));
      const results = await Promise.allSettled(versions.map((version) => store.put('race/v2-x.tar.zst', Readable.from([version]))));
      assert.equal(results.map((result) => result.status), ['fulfilled', 'fulfilled', 'fulfilled'], `round ${round}`);
      const got = await bytesOf(await store.get('race/v2-x.tar.zst'));
      assert.ok(versions.some((version) => got?.equals(version)), `round ${round}: the object is one whole version`);
    }
    assert.equal((await store.list(undefined, 'race/')).map((o) => o.key), ['race/v2-x.tar.zst'], 'one cache listed');
  });

  test('objects that are not archives (a marker) are written and read as they are', async () => {
    const store = await kind.make();
    await store.put('repo/main/v2-a.tar.zst.restored', body('mark'));
    assert.equal(await bytesOf(await store.get('repo/main/v2-a.tar.zst.restored')), Buffer.from('mark'));
    assert.equal((await store.list(undefined, 'repo/')).map((o) => [o.key, o.size]), [['repo/main/v2-a.tar.zst.restored', 4]]);
  });

  test('a put whose body fails half-way fails, and the previous object stays whole', async () => {
    const store = await kind.make();
    await store.put('abort/v2-x.tar.zst', body('previous'));
    async function* failing() {
      yield Buffer.alloc(6 << 20, 'p');
      throw new Error('the packer died');
    }
    await rejects(store.put('abort/v2-x.tar.zst', Readable.from(failing())), /failed/);
    assert.equal(await bytesOf(await store.get('abort/v2-x.tar.zst')), Buffer.from('previous'));
    assert.equal((await store.list(undefined, 'abort/')).map((o) => o.key), ['abort/v2-x.tar.zst'],
      'no temporary object is listed');
  });

  test('a damaged archive is never restored: one warning, a miss, and the tree as it was', async () => {
    const { store, damage } = await kind.damageable();
    const work = join(dir, `integrity-${++prefixes}`);
    const common = { store, cacheName: 'repo/main', cacheDirs: ['obj'] };
    const tree = (n: number) => {
      const root = join(work, `build-${n}`, 'source');
      writeTree(root, { 'main.c': 'int main(void) { return 0; }\n' });
      return { root, stateDir: join(work, `state-${n}`) };
    };
    const first = tree(1);
    await restore({ ...common, ...first });
    writeTree(first.root, { 'obj/a.o': randomBytes(256 << 10), 'obj/b.o': randomBytes(256 << 10) });
    const saved = await save({ ...common, stateDir: first.stateDir });
    assert.is(saved.outcome, 'saved', saved.reason);
    await damage(saved.key);
    const second = tree(2);
    const warnings: string[] = [];
    const report = await restore({ ...common, ...second, onWarning: (warning) => warnings.push(warning) });
    assert.is.not(report.outcome, 'hit');
    assert.is(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /digest|checksum|corrupt|damaged|refused/i);
    assert.equal(readdirSync(second.root), ['main.c'], 'nothing of the damaged archive reached the tree');
  });

  test('a store that refuses writes: the put rejects with a StoreError saying why', async () => {
    const { store, says } = await kind.denied();
    await rejects(store.put('denied/v2-x.tar.zst', body('x')), says);
  });

  test.run();
}
