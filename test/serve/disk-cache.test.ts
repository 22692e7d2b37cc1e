import { readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskCache } from '../../src/serve/disk-cache.js';
import { tempDir } from '../helpers.js';

const test = suite('the daemon\'s disk cache');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

async function put(cache: DiskCache, key: string, bytes: number): Promise<void> {
  const writer = await cache.writer(key);
  await writer.write(Buffer.alloc(bytes, key));
  await writer.commit({ key, size: bytes, modified: new Date(0).toISOString() });
}

async function read(cache: DiskCache, key: string): Promise<string | undefined> {
  const stream = await cache.open(key);
  if (!stream) return undefined;
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString();
  return text;
}

test('least recently used objects go first once the cap is passed; the newest always stays', async () => {
  const cache = new DiskCache(join(dir, 'cache'), 250);
  await cache.prepare();
  await put(cache, 'a', 100);
  await put(cache, 'b', 100);
  // Used long ago, whatever the clock's resolution: 'a' becomes the least recently used.
  for (const name of readdirSync(join(dir, 'cache')).filter((n) => !n.includes('.'))) utimesSync(join(dir, 'cache', name), 1000, 1000);
  assert.is((await read(cache, 'b'))?.length, 100, 'reading b makes it recent');
  await put(cache, 'c', 100);
  assert.is(await read(cache, 'a'), undefined, 'a was evicted');
  assert.is((await read(cache, 'b'))?.length, 100);
  assert.is((await cache.meta('c'))?.size, 100);
  await put(cache, 'huge', 1000);
  assert.is((await read(cache, 'huge'))?.length, 1000, 'an object over the cap is kept, alone');
  assert.is(await cache.meta('b'), undefined);
});

test('an aborted write leaves nothing; temporaries of a killed daemon are cleared at start', async () => {
  const cache = new DiskCache(join(dir, 'cache'), 1000);
  await cache.prepare();
  const aborted = await cache.writer('x');
  await aborted.write(Buffer.from('partial'));
  await aborted.abort();
  const killed = await cache.writer('y');
  await killed.write(Buffer.from('left by a killed daemon'));
  await new DiskCache(join(dir, 'cache'), 1000).prepare();
  assert.equal(readdirSync(join(dir, 'cache')), []);
  assert.is(await read(cache, 'x'), undefined);
  // The descriptor the killed daemon's exit would have closed (left open, the collector closes it, with a warning).
  await killed.abort();
});

test.run();
