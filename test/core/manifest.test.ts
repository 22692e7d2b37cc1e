import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { diffManifests, formatManifest, parseManifest, sortManifest } from '../../src/core/manifest.js';

const D1 = 'd41d8cd98f00b204e9800998ecf8427e';
const D2 = '0cc175b9c0f1b6a831c399e269772661';

const format = suite('manifest format (GNU md5sum)');

format('plain names: digest, two spaces, name, newline', () => {
  const text = formatManifest(new Map([['a.c', D1], ['dir/b c.h', D2]])).toString('latin1');
  assert.is(text, `${D1}  a.c\n${D2}  dir/b c.h\n`);
});

format('names with backslash, newline or CR get a leading backslash and escapes', () => {
  const text = formatManifest(new Map([['a\\b', D1], ['n\nl', D2], ['c\rr', D1]])).toString('latin1');
  assert.is(text, `\\${D1}  a\\\\b\n\\${D2}  n\\nl\n\\${D1}  c\\rr\n`);
});

format('round trip keeps every byte of odd names, non-UTF-8 included', () => {
  const names = ['sp ace', 'back\\slash', 'new\nline', '\xff\xfe raw', 'tab\there', 'ünï'];
  const manifest = sortManifest(names.map((name, i) => [name, i % 2 ? D1 : D2]));
  const parsed = parseManifest(formatManifest(manifest));
  assert.equal(parsed.problems, []);
  assert.equal([...parsed.manifest], [...manifest]);
});

format('reads binary-mode lines ("*") as md5sum -c does', () => {
  const { manifest, problems } = parseManifest(Buffer.from(`${D1} *bin.dat\n`));
  assert.equal(problems, []);
  assert.is(manifest.get('bin.dat'), D1);
});

format('every malformed line is a problem with its line number; good lines still count', () => {
  const text = [`${D1}  ok`, 'not a digest  x', `${D1} one-space`, `\\${D1}  bad\\qescape`, `${D1}  ok`, `${D2}  `].join('\n');
  const { manifest, problems } = parseManifest(Buffer.from(`${text}\n`), 4096);
  assert.equal([...manifest.keys()], ['ok']);
  assert.equal(problems, [
    'line 2: not an MD5 digest', 'line 3: expected two spaces after the digest', 'line 4: bad file name',
    'line 5: file listed twice', 'line 6: bad file name',
  ]);
});

format('absurdly long names are refused', () => {
  const { problems } = parseManifest(Buffer.from(`${D1}  ${'x'.repeat(5000)}\n`), 4096);
  assert.equal(problems, ['line 1: file name longer than 4096 bytes']);
});

format.run();

const diff = suite('manifest diff');

diff('sorts names into unchanged, changed, added and removed', () => {
  const cached = new Map([['same', D1], ['edit', D1], ['gone', D2]]);
  const current = new Map([['same', D1], ['edit', D2], ['new', D1]]);
  assert.equal(diffManifests(current, cached), { unchanged: ['same'], changed: ['edit'], added: ['new'], removed: ['gone'] });
});

diff('empty cached manifest: everything is added', () => {
  assert.equal(diffManifests(new Map([['b', D1], ['a', D2]]), new Map()), { unchanged: [], changed: [], added: ['a', 'b'], removed: [] });
});

diff.run();
