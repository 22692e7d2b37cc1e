import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { COMPRESSED_LIMIT, formatBlobManifest, parseBlobManifest } from '../src/core/blobs.js';
import { runCli, tempDir, warningsOf, writeTree } from './helpers.js';

// The blob layout's compression (#17): each blob one zstd frame in its pack where that pays, which
// standard tar and zstd read back; a damaged frame is a miss; without the addon, a clear miss.
const test = suite('blob layout: zstd frames');
let work: string;
let remove: () => Promise<void>;
test.before(async () => {
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  await remove();
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const compressible = Buffer.from('static int value(void) { return 42; }\n'.repeat(3000));
const incompressible = randomBytes(64 << 10);
let builds = 0;

/** A build dir and the CLI's environment for it, saving to (or restoring from) `store` in the blob layout. */
function build(store: string, extra: Record<string, string> = {}) {
  const top = join(work, `build-${++builds}`);
  const root = join(top, 'source');
  writeTree(root, { 'main.c': 'int main;\n' });
  const env = { NBC_STORE: store, NBC_CACHE_NAME: 'main', NBC_CACHE_DIRS: 'obj', NBC_LAYOUT: 'blobs', NIX_BUILD_TOP: top, XDG_CACHE_HOME: join(top, 'xdg'), ...extra };
  return { root, run: (command: string) => runCli([command], { cwd: root, env }) };
}

/** A restore in a new build from `store`: it hits without a warning and gives back both objects. */
async function restoresWhole(store: string): Promise<void> {
  const other = build(store);
  const restored = await other.run('restore');
  assert.is(restored.code, 0, restored.stderr);
  assert.equal(warningsOf(restored.stderr), []);
  assert.equal(readFileSync(join(other.root, 'obj/text.o')), compressible);
  assert.equal(readFileSync(join(other.root, 'obj/random.o')), incompressible);
}

async function saved(store: string, extra: Record<string, string> = {}): Promise<string> {
  mkdirSync(store, { recursive: true });
  const first = build(store, extra);
  assert.is((await first.run('restore')).code, 0);
  writeTree(first.root, { 'obj/text.o': compressible, 'obj/random.o': incompressible });
  const result = await first.run('save');
  assert.is(result.code, 0, result.stderr);
  assert.equal(warningsOf(result.stderr), []);
  const packs = readdirSync(join(store, 'blobs/packs'));
  assert.is(packs.length, 1);
  return join(store, 'blobs/packs', packs[0]!);
}

/** Each entry of a tar: name, where its content starts, its size. */
function tarEntries(tar: Buffer): { name: string; offset: number; size: number }[] {
  const entries = [];
  for (let at = 0; at + 512 <= tar.length && tar[at] !== 0;) {
    const name = tar.toString('latin1', at, at + 100).replace(/\0.*$/s, '');
    const size = parseInt(tar.toString('latin1', at + 124, at + 136).replace(/\0.*$/s, '').trim(), 8);
    entries.push({ name, offset: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

test('a blob that compresses is one zstd frame (<hash>.zst), which tar and zstd read back; one that does not is kept as it is', async () => {
  const store = join(work, 'store-frames');
  const pack = await saved(store);
  const names = execFileSync('tar', ['-tf', pack], { encoding: 'utf8' }).trim().split('\n');
  assert.ok(names.includes(`${sha256(compressible)}.zst`), names.join(' '));
  assert.ok(names.includes(sha256(incompressible)), names.join(' '));
  const out = join(work, 'extracted');
  mkdirSync(out);
  execFileSync('tar', ['-xf', pack, '-C', out, `${sha256(compressible)}.zst`]);
  assert.equal(execFileSync('zstd', ['-dc', join(out, `${sha256(compressible)}.zst`)]), compressible);
  assert.ok(statSync(pack).size < incompressible.length + compressible.length / 10, `a pack of ${statSync(pack).size} bytes`);

  await restoresWhole(store);

  // ls counts what the store holds (the frame), beside what the cache restores.
  const ls = await runCli(['ls', '--store', store, '--json', '-'], { cwd: work });
  assert.is(ls.code, 0, ls.stderr);
  const [cache] = (JSON.parse(ls.stdout) as { caches: { size: number; logical: number }[] }).caches;
  assert.ok(cache!.logical >= compressible.length + incompressible.length, ls.stdout);
  assert.ok(cache!.size < statSync(pack).size + (4 << 10) && cache!.size < cache!.logical / 2, ls.stdout);
});

test('a damaged frame is a miss with one warning, and nothing of it is restored', async () => {
  const store = join(work, 'store-damaged');
  const pack = await saved(store);
  const data = readFileSync(pack);
  const frame = tarEntries(data).find((entry) => entry.name === `${sha256(compressible)}.zst`)!;
  data[frame.offset + Math.floor(frame.size / 2)]! ^= 0x55;
  writeFileSync(pack, data);
  const other = build(store);
  const restored = await other.run('restore');
  assert.is(restored.code, 0, restored.stderr);
  const warnings = warningsOf(restored.stderr);
  assert.is(warnings.length, 1, restored.stderr);
  assert.match(warnings[0]!, new RegExp(`blob ${sha256(compressible)} in blobs/packs/[0-9a-f]{16}\\.pack does not match its hash`));
  assert.equal(readdirSync(other.root), ['main.c']);
});

/** The manifest of the cache `main` in `store`, changed by `edit` (its JSON text's blob rows). */
function editManifest(store: string, edit: (rows: Record<string, unknown[]>) => void): void {
  const [name] = readdirSync(join(store, 'main')).filter((n) => n.endsWith('.blobs'));
  const file = join(store, 'main', name!);
  const manifest = JSON.parse(gunzipSync(readFileSync(file)).toString()) as { blobs: Record<string, unknown[]> };
  edit(manifest.blobs);
  writeFileSync(file, gzipSync(JSON.stringify(manifest)));
}

test('each frame is checked by its own SHA-256, recorded by the save; a manifest without it (saved before) has the content checked', async () => {
  const store = join(work, 'store-frame-hash');
  const pack = readFileSync(await saved(store));
  const frame = tarEntries(pack).find((entry) => entry.name === `${sha256(compressible)}.zst`)!;
  let rows: Record<string, unknown[]> = {};
  editManifest(store, (blobs) => {
    rows = structuredClone(blobs);
  });
  assert.is(rows[sha256(compressible)]![4], sha256(pack.subarray(frame.offset, frame.offset + frame.size)));
  assert.is(rows[sha256(incompressible)]!.length, 3);

  // A frame that is whole but not the one saved: refused by its hash (decompressing it would succeed).
  editManifest(store, (blobs) => {
    blobs[sha256(compressible)]![4] = sha256(Buffer.from('another frame'));
  });
  const refused = await build(store).run('restore');
  assert.is(refused.code, 0, refused.stderr);
  assert.match(warningsOf(refused.stderr).join('\n'), new RegExp(`blob ${sha256(compressible)} in blobs/packs/[0-9a-f]{16}\\.pack does not match its hash`));

  editManifest(store, (blobs) => {
    for (const row of Object.values(blobs)) row.splice(4);
  });
  await restoresWhole(store);
});

test('without the zstd addon (NBC_ZSTD=off): a save keeps blobs as they are; a compressed cache is a miss that says why', async () => {
  const plain = await saved(join(work, 'store-plain'), { NBC_ZSTD: 'off' });
  assert.not.ok(execFileSync('tar', ['-tf', plain], { encoding: 'utf8' }).includes('.zst'));

  const store = join(work, 'store-compressed');
  await saved(store);
  const other = build(store, { NBC_ZSTD: 'off' });
  const restored = await other.run('restore');
  assert.is(restored.code, 0, restored.stderr);
  const warnings = warningsOf(restored.stderr);
  assert.is(warnings.length, 1, restored.stderr);
  assert.match(warnings[0]!, /compressed with zstd, and the zstd addon was not built/);
  assert.equal(readdirSync(other.root), ['main.c']);
});

test('a manifest whose frame is not smaller than its blob, or whose compressed blob is too big, is refused', () => {
  const id = 'a'.repeat(64);
  const manifest = (size: number, stored: number) => formatBlobManifest({
    entries: [{ path: 'obj/x', type: 'File', mode: 0o644, mtime: 1, size, blob: id }],
    blobs: new Map([[id, { pack: 'blobs/packs/0123456789abcdef.pack', offset: 512, size, stored }]]),
  });
  assert.equal(parseBlobManifest(manifest(1000, 400)), {
    entries: [{ path: 'obj/x', type: 'File', mode: 0o644, mtime: 1, size: 1000, blob: id }],
    blobs: new Map([[id, { pack: 'blobs/packs/0123456789abcdef.pack', offset: 512, size: 1000, stored: 400 }]]),
  });
  const frameHash = 'b'.repeat(64);
  const hashed = { pack: 'blobs/packs/0123456789abcdef.pack', offset: 512, size: 1000, stored: 400, frameHash };
  const text = formatBlobManifest({ entries: [{ path: 'obj/x', type: 'File', mode: 0o644, mtime: 1, size: 1000, blob: id }], blobs: new Map([[id, hashed]]) });
  assert.equal((parseBlobManifest(text) as { blobs: Map<string, unknown> }).blobs.get(id), hashed);
  // A frame hash that is no SHA-256, or one for a blob stored as it is, is refused.
  for (const wrong of [text.replace(frameHash, 'b'.repeat(63)), text.replace(`400,"${frameHash}"`, `"${frameHash}"`)]) {
    assert.equal(parseBlobManifest(wrong), { problem: `bad blob ${id}` }, wrong);
  }
  for (const [size, stored] of [[1000, 1000], [1000, 0], [COMPRESSED_LIMIT + 1, 1000]] as const) {
    assert.equal(parseBlobManifest(manifest(size, stored)), { problem: `bad blob ${id}` }, `${size} ${stored}`);
  }
});

test.run();
