import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, snapshot, tempDir, writeTree } from './helpers.js';
import { gzip, metaEntries, putArchive, rawTar, type RawEntry } from './tar-fixture.js';

const test = suite('hostile and damaged archives are refused whole');
let work: string;
let remove: () => Promise<void>;
test.before(async () => { ({ dir: work, remove } = await tempDir()); });
test.after(() => remove());

const SOURCES = { 'main.c': 'int main(void) { return 0; }\n', 'obj/keep.txt': 'a source inside the cache dir\n' };

/**
 * Restores `archive` into a fresh build dir and checks the outcome every refusal must have: exit 0,
 * one warning naming the problem, the tree byte- and mtime-identical, nothing new beside it, no
 * staging left behind. Returns the build top for extra checks.
 */
async function refuses(archive: Buffer, warning: RegExp): Promise<string> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  const store = join(top, 'store');
  writeTree(root, SOURCES);
  writeFileSync(join(top, 'canary'), 'canary');
  putArchive(store, 'main', archive);
  const before = snapshot(root);
  const outside = readdirSync(top).sort();
  const result = await runCli(['restore', '--cache-name', 'main', '--cache-dir', 'obj', '--store', store], {
    cwd: root, env: { NIX_BUILD_TOP: top },
  });
  assert.is(result.code, 0, result.stderr);
  const warnings = result.stderr.split('\n').filter((line) => line.startsWith('nix-build-cache: warning:'));
  assert.is(warnings.length, 1, result.stderr);
  assert.match(warnings[0]!, warning);
  assert.match(result.stderr, /restore: miss \(tried main: unusable\)/);
  assert.equal(snapshot(root), before);
  assert.equal(readdirSync(top).sort(), [...outside, '.nix-build-cache'].sort());
  assert.is(readFileSync(join(top, 'canary'), 'utf8'), 'canary');
  assert.equal(readdirSync(join(top, '.nix-build-cache')).filter((name) => name.startsWith('staging')), []);
  return top;
}

const good: RawEntry[] = [{ path: 'obj/', type: 'Directory' }, { path: 'obj/a.o', data: 'object a' }];

test('a corrupt gzip stream', async () => {
  const archive = gzip(rawTar([...good, { path: 'obj/big.o', data: Buffer.alloc(200_000, 7) }, ...metaEntries(2)]));
  archive.fill(0x55, 40, 80);
  await refuses(archive, /cache main is unusable.*(corrupt|damaged|invalid)/);
});

test('a truncated archive', async () => {
  const archive = gzip(rawTar([...good, { path: 'obj/big.o', data: Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251)) }, ...metaEntries(2)]));
  await refuses(archive.subarray(0, archive.length >> 1), /cache main is unusable.*(unexpected end|truncated|corrupt)/i);
});

test('an archive cut at an entry boundary (meta files missing)', async () => {
  await refuses(gzip(rawTar(good)), /not a nix-build-cache archive/);
});

test('a path with ../', async () => {
  const top = await refuses(gzip(rawTar([...good, { path: 'obj/../../escaped', data: 'x' }, ...metaEntries(2)])),
    /obj\/\.\.\/\.\.\/escaped: absolute path or "\.\." in the path/);
  assert.not.ok(existsSync(join(top, 'escaped')));
});

test('an absolute path', async () => {
  const target = join(work, 'absolute-target');
  await refuses(gzip(rawTar([...good, { path: target, data: 'x' }, ...metaEntries(2)])), /absolute path or "\.\."/);
  assert.not.ok(existsSync(target));
});

test('a symlink pointing outside, then a file written through it', async () => {
  const top = await refuses(gzip(rawTar([...good, { path: 'obj/evil', type: 'SymbolicLink', linkpath: '../..' },
    { path: 'obj/evil/pwned', data: 'x' }, ...metaEntries(3)])), /obj\/evil: symlink to \.\.\/\.\. points outside the tree/);
  assert.not.ok(existsSync(join(top, 'pwned')));
});

test('a symlink inside the tree, then a file written through it', async () => {
  await refuses(gzip(rawTar([...good, { path: 'obj/link', type: 'SymbolicLink', linkpath: '../' },
    { path: 'obj/link/main.c', data: 'overwritten' }, ...metaEntries(3)])), /obj\/link\/main\.c: inside a path that the archive made a symlink/);
});

test.run();
