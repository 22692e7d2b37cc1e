import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ByteFinder } from '../../src/core/find.js';

const test = suite('finding a byte string in pieces');

/** Feeds `text` cut at `cuts` and says whether `needle` was found. */
function found(text: string, needle: string, cuts: number[]): boolean {
  const finder = new ByteFinder(Buffer.from(needle));
  const bounds = [0, ...cuts, text.length];
  for (let i = 0; i + 1 < bounds.length; i++) finder.feed(Buffer.from(text.slice(bounds[i], bounds[i + 1])), i + 2 < bounds.length);
  return finder.found;
}

test('found inside a piece and across every cut of the needle', () => {
  const text = 'xxxx/tmp/nix-build-a/sourceyyyy';
  assert.ok(found(text, '/tmp/nix-build-a/source', []));
  for (let cut = 5; cut < 27; cut++) assert.ok(found(text, '/tmp/nix-build-a/source', [cut]), `cut at ${cut}`);
  assert.ok(found(text, '/tmp/nix-build-a/source', [10, 20]), 'cut twice');
  assert.ok(found(text, '/tmp/nix-build-a/source', [6, 8, 10, 12, 14, 16, 18, 20, 22]), 'pieces shorter than the needle');
});

test('not found when absent, nor when the pieces only touch it from both sides of a gap', () => {
  assert.not.ok(found('xxxx/tmp/nix-build-a/sourc', '/tmp/nix-build-a/source', [10]));
  assert.not.ok(found('/tmp/nix-build-a/XXX/source', '/tmp/nix-build-a/source', [16]));
  assert.not.ok(found('/tmp/nix-build-', '/tmp/nix-build-a', [15]), 'a needle longer than all that came');
});

test.run();
