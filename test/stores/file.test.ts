import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../src/core/errors.js';
import { FileStore } from '../../src/stores/file.js';
import { runCli, tempDir, writeTree } from '../helpers.js';

const test = suite('local directory store');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

async function read(stream: AsyncIterable<Buffer> | undefined): Promise<string> {
  assert.ok(stream, 'object exists');
  const chunks: Buffer[] = [];
  for await (const chunk of stream!) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

test('put then get returns the bytes; a missing key is undefined', async () => {
  const store = new FileStore(dir);
  assert.equal(await store.put('name/v2-x.tar.gz', Readable.from([Buffer.from('hello '), Buffer.from('world')])), { bytes: 11 });
  assert.is(await read(await store.get('name/v2-x.tar.gz')), 'hello world');
  assert.is(await store.get('name/other'), undefined);
});

test('a put that fails half-way leaves the previous object whole and no temporary file', async () => {
  const store = new FileStore(dir);
  await store.put('k', Readable.from([Buffer.from('previous')]));
  async function* failing() {
    yield Buffer.from('partial');
    throw new Error('disk on fire');
  }
  try {
    await store.put('k', Readable.from(failing()));
    assert.unreachable('should have failed');
  } catch (error) {
    assert.instance(error, StoreError);
    assert.match((error as Error).message, /write .*k failed: disk on fire/);
  }
  assert.is(readFileSync(join(dir, 'k'), 'utf8'), 'previous');
  assert.equal(readdirSync(dir), ['k']);
});

test('file:// URL and keys that would leave the directory', async () => {
  const store = new FileStore(dir);
  assert.is(store.location, `file://${dir}`);
  try {
    await store.get('../escape');
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.instance(error, StoreError);
  }
  assert.not.ok(existsSync(join(dir, '..', 'escape')));
});

test('in a Nix build a missing store directory outside the build is not created: restore and save each warn once naming the set-up, and the build goes on', async () => {
  const store = join(dir, 'never-created');
  const top = join(dir, 'build');
  const root = join(top, 'source');
  writeTree(root, { 'a.c': 'int a;\n' });
  const env = { NIX_BUILD_TOP: top, NBC_STORE: store };
  const args = ['--cache-name', 'repo/main', '--cache-dir', 'obj', '--state-dir', join(dir, 'state')];
  const restored = await runCli(['restore', ...args], { cwd: root, env });
  assert.is(restored.code, 0, restored.stderr);
  assert.match(restored.stderr, new RegExp(`the store directory ${store} does not exist`));
  writeTree(root, { 'obj/a.o': 'object' });
  const saved = await runCli(['save', ...args], { cwd: root, env });
  assert.is(saved.code, 0, saved.stderr);
  const warnings = saved.stderr.split('\n').filter((line) => line.includes('warning'));
  assert.is(warnings.length, 1, saved.stderr);
  assert.match(warnings[0]!, /the store directory .*never-created does not exist in this build.*install -d -m 2775 -o root -g nixbld DIR.*extra-sandbox-paths/);
  assert.not.ok(existsSync(store), 'nothing was created where the sandbox would have thrown it away');
  const inBuild = await runCli(['save', ...args, '--store', '../store'], { cwd: root, env });
  assert.is(inBuild.code, 0, inBuild.stderr);
  assert.ok(existsSync(join(top, 'store')), 'a store inside the build directory is created');
  const outside = await runCli(['save', ...args], { cwd: root, env: { NBC_STORE: store } });
  assert.is(outside.code, 0, outside.stderr);
  assert.ok(existsSync(store), 'outside a Nix build the store directory is created on the first save');
});

test.run();
