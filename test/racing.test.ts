import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, utimesSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { objectKey } from '../src/core/key.js';
import { RESTORED_SUFFIX } from '../src/core/prune.js';
import { archiveObjectKey } from '../src/core/pointer.js';
import { S3Store } from '../src/stores/s3.js';
import { runCli, tempDir, writeTree } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';
import { gzip, metaEntries, rawTar } from './tar-fixture.js';

// Racing saves to one S3 cache name (#15 item 9): every save uploads its archive under a key of
// its own and then points the name at it, so every restore afterwards hits one whole writer's
// archive; `ls`, `prune` and archives of the format before keep working.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const test = suite('racing saves on S3 never leave a miss');
let s3: TestS3;
let client: S3Client;
let work: string;
let remove: () => Promise<void>;
let prefixes = 0;
test.before(async () => {
  s3 = await startS3('racing');
  client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  client.destroy();
  await s3.close();
  await remove();
});

const ARGS = ['--cache-name', 'main', '--cache-dir', 'obj', '--compression', 'gzip'];
const KEY = objectKey('main', { cacheDirs: ['obj'], compression: 'gzip' });
const env = (prefix: string, top: string) => ({
  NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x', NBC_STORE: `s3://${s3.bucket}/${prefix}`, NBC_S3_ENDPOINT: s3.endpoint,
});
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

/** The bucket's keys under `prefix`, but the markers restores leave (for prune --max-size). */
async function rawKeys(prefix: string): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/` }));
  return (page.Contents ?? []).map((item) => item.Key!.slice(prefix.length + 1)).filter((key) => !key.endsWith(RESTORED_SUFFIX)).sort();
}

/** A build that restores, writes an artifact of its own and saves: resolves to the artifact. */
async function build(prefix: string, size: number): Promise<{ artifact: Buffer; save: Promise<{ code: number; stderr: string }> }> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, { 'a.c': 'int a;\n' });
  await runCli(['restore', ...ARGS], { cwd: root, env: env(prefix, top) });
  const artifact = randomBytes(size);
  writeTree(root, { 'obj/a.o': artifact });
  return { artifact, save: runCli(['save', ...ARGS], { cwd: root, env: env(prefix, top) }) };
}

/** A fresh tree restored from the store: the artifact it got, or undefined on a miss. */
async function restored(prefix: string): Promise<{ artifact: Buffer | undefined; stderr: string }> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, { 'a.c': 'int a;\n' });
  const result = await runCli(['restore', ...ARGS], { cwd: root, env: env(prefix, top) });
  if (!/restore: hit main/.test(result.stderr)) return { artifact: undefined, stderr: result.stderr };
  return { artifact: readFileSync(join(root, 'obj', 'a.o')), stderr: result.stderr };
}

test('three saves at once, four rounds: each restore after hits one whole writer\'s archive', async () => {
  const prefix = `r${++prefixes}`;
  for (let round = 0; round < 4; round++) {
    const builds = await Promise.all([0, 1, 2].map((i) => build(prefix, (2 << 20) + i * 4096 + round)));
    const saves = await Promise.all(builds.map((b) => b.save));
    saves.forEach((save) => assert.match(save.stderr, /save: saved main/, save.stderr));
    const { artifact, stderr } = await restored(prefix);
    assert.ok(artifact, `round ${round}: ${stderr}`);
    assert.ok(builds.some((b) => md5(b.artifact) === md5(artifact!)), `round ${round}: the artifact of one writer, whole`);
    assert.not.match(stderr, /warning/);
  }
  // The racers' archives stay beside the pointer until an hour old (a racer may be about to name
  // its own): one pointer, and never more archives than the saves made.
  const keys = await rawKeys(prefix);
  assert.is(keys.filter((key) => key === KEY).length, 1, keys.join('\n'));
  assert.ok(keys.length <= 1 + 4 * 3, keys.join('\n'));
});

test('a save replaces the archive the pointer named; ls lists one archive with its size; prune removes everything beside it', async () => {
  const prefix = `r${++prefixes}`;
  for (const size of [1 << 20, 3 << 20]) {
    const { save } = await build(prefix, size);
    assert.match((await save).stderr, /save: saved main/);
  }
  const keys = await rawKeys(prefix);
  assert.equal(keys.length, 2, keys.join('\n'));
  assert.ok(keys.includes(KEY));
  assert.match(keys.find((key) => key !== KEY)!, /\/v2-[0-9a-f]{16}\.[0-9a-f]{16}\.tar\.gz$/);
  const top = await mkdtemp(join(work, 'ls-'));
  const ls = await runCli(['ls', '--json', join(top, 'ls.json')], { cwd: top, env: env(prefix, top) });
  assert.is(ls.code, 0, ls.stderr);
  const caches = JSON.parse(readFileSync(join(top, 'ls.json'), 'utf8')).caches as { key: string; size: number }[];
  assert.equal(caches.map((c) => c.key), [KEY]);
  assert.ok(caches[0]!.size > 3 << 20, `size ${caches[0]!.size}: the archive's, not the pointer's`);
  const prune = await runCli(['prune', '--older-than', '0s'], { cwd: top, env: env(prefix, top) });
  assert.is(prune.code, 0, prune.stderr);
  assert.equal(await rawKeys(prefix), []);
});

test('an archive of the format before (a digest beside it) restores; the next save replaces it and its digest', async () => {
  const prefix = `r${++prefixes}`;
  const archive = gzip(rawTar([{ path: 'obj/', type: 'Directory' }, { path: 'obj/a.o', data: 'legacy' }, ...metaEntries(1)]));
  const nonce = '0011223344556677';
  await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${KEY}`, Body: archive, Metadata: { 'nbc-nonce': nonce } }));
  await client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: `${prefix}/${KEY}.${nonce}.sha256`,
    Body: JSON.stringify({ sha256: createHash('sha256').update(archive).digest('hex'), bytes: archive.length }),
  }));
  assert.equal((await restored(prefix)).artifact?.toString(), 'legacy');
  const { save } = await build(prefix, 4096);
  assert.match((await save).stderr, /save: saved main/);
  const keys = await rawKeys(prefix);
  assert.equal(keys.length, 2, keys.join('\n'));
  assert.not.ok(keys.some((key) => key.endsWith('.sha256')), keys.join('\n'));
  assert.is((await restored(prefix)).artifact?.length, 4096);
});

test('a pointer whose archive is gone: one warning, a clean miss; the next save repairs it', async () => {
  const prefix = `r${++prefixes}`;
  const { save } = await build(prefix, 4096);
  assert.match((await save).stderr, /save: saved main/);
  const object = (await rawKeys(prefix)).find((key) => key !== KEY)!;
  await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${object}` }));
  const miss = await restored(prefix);
  assert.is(miss.artifact, undefined);
  assert.match(miss.stderr, /warning: cache main is unusable, archive .*: the pointer names .*, which is gone/);
  const again = await build(prefix, 8192);
  assert.match((await again.save).stderr, /save: saved main/);
  assert.is((await restored(prefix)).artifact?.length, 8192);
});

test('prune removes archives no pointer names once an hour old, and keeps young ones (a save in flight)', async () => {
  const prefix = `r${++prefixes}`;
  const store = new S3Store(s3.bucket, prefix, { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'x' } });
  try {
    await store.put(KEY, Readable.from([Buffer.from('current')]));
    const orphans = ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'].map((nonce) => archiveObjectKey(KEY, nonce));
    for (const orphan of orphans) await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${orphan}`, Body: 'lost a race' }));
    // s3rver dates an object by its file's mtime: age the first orphan by two hours.
    const old = (Date.now() - 2 * 3600_000) / 1000;
    utimesSync(join(s3.directory, s3.bucket, prefix, `${orphans[0]!}._S3rver_object`), old, old);
    const top = await mkdtemp(join(work, 'prune-'));
    const prune = await runCli(['prune', '--older-than', '52w'], { cwd: top, env: env(prefix, top) });
    assert.is(prune.code, 0, prune.stderr);
    const keys = await rawKeys(prefix);
    assert.not.ok(keys.includes(orphans[0]!), keys.join('\n'));
    assert.ok(keys.includes(orphans[1]!), keys.join('\n'));
    assert.equal((await store.list()).map((o) => o.key), [KEY]);
    const chunks: Buffer[] = [];
    for await (const chunk of (await store.get(KEY))!) chunks.push(chunk);
    assert.is(Buffer.concat(chunks).toString(), 'current');
  } finally {
    store.close();
  }
});

test.run();
