import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { editDistance, nearest } from '../../src/core/suggest.js';

const test = suite('suggest');

test('edit distance counts inserts, deletes and replacements', () => {
  assert.is(editDistance('', 'abc'), 3);
  assert.is(editDistance('kitten', 'sitting'), 3);
  assert.is(editDistance('cache-name', 'cache-name'), 0);
});

test('nearest: the closest candidate when close, a prefix match, else nothing', () => {
  const options = ['cache-name', 'cache-dir', 'store', 'strict'];
  assert.is(nearest('cach-name', options), 'cache-name');
  assert.is(nearest('stroe', options), 'store');
  assert.is(nearest('cache', options), 'cache-name');
  assert.is(nearest('bogus', options), undefined);
  assert.is(nearest('x', []), undefined);
});

test.run();
