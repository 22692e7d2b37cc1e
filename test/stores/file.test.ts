import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../src/errors.js';
import { FileStore } from '../../src/stores/file.js';
import { tempDir } from '../helpers.js';

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

test.run();
