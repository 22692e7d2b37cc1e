import { Header } from 'tar';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeUstarHeader, type UstarFields } from '../../src/core/ustar.js';

const test = suite('ustar headers (the packer\'s fast path)');

/** node-tar's header for the same fields: the bytes ours must equal. */
function nodeTar(fields: UstarFields): Buffer {
  const { mtime, ...rest } = fields;
  const header = new Header({ ...rest, ...(mtime === undefined ? {} : { mtime: new Date(mtime * 1000) }) });
  assert.not.ok(header.encode(), 'node-tar needed a PAX header');
  return header.block!;
}

const SAME: [string, UstarFields][] = [
  ['a small file', { path: 'obj/a.o', type: 'File', mode: 0o644, size: 5, mtime: 1_700_000_000 }],
  ['an empty executable', { path: 'bin/tool', type: 'File', mode: 0o755, size: 0, mtime: 1 }],
  ['a size needing eleven digits (over 1 GiB)', { path: 'big', type: 'File', mode: 0o600, size: 3 * 2 ** 30 + 7, mtime: 1_700_000_000 }],
  ['the largest plain size', { path: 'huge', type: 'File', mode: 0o644, size: 8 ** 11 - 1, mtime: 0 }],
  ['a directory (no time)', { path: 'obj/sub/', type: 'Directory', mode: 0o755, size: 0 }],
  ['a symlink', { path: 'lib/libfoo.so', type: 'SymbolicLink', mode: 0o777, size: 0, mtime: 1_600_000_000, linkpath: 'libfoo.so.1' }],
  ['a hard link', { path: 'obj/b.o', type: 'Link', mode: 0o644, size: 0, mtime: 1_600_000_000, linkpath: 'obj/a.o' }],
  ['a name of 99 bytes', { path: `obj/${'n'.repeat(95)}`, type: 'File', mode: 0o644, size: 1, mtime: 5 }],
  ['a link target of exactly 100 bytes', { path: 'l', type: 'SymbolicLink', mode: 0o777, size: 0, mtime: 5, linkpath: 't'.repeat(100) }],
];
for (const [name, fields] of SAME) {
  test(`${name}: byte for byte node-tar's`, () => {
    const block = Buffer.alloc(512, 0xaa);
    assert.ok(encodeUstarHeader(fields, block));
    assert.equal(block.toString('hex'), nodeTar(fields).toString('hex'));
    const parsed = new Header(block);
    assert.ok(parsed.cksumValid);
    assert.is(parsed.path, fields.path);
    assert.is(parsed.size, fields.size);
  });
}

const OTHERS: [string, UstarFields][] = [
  ['a name of 100 bytes (node-tar splits it into the prefix field)', { path: `obj/${'n'.repeat(96)}`, type: 'File', mode: 0o644, size: 1, mtime: 5 }],
  ['a non-ASCII name', { path: 'obj/größe.o', type: 'File', mode: 0o644, size: 1, mtime: 5 }],
  ['a link target over 100 bytes', { path: 'l', type: 'SymbolicLink', mode: 0o777, size: 0, mtime: 5, linkpath: 't'.repeat(101) }],
  ['a size of 8 GiB', { path: 'huge', type: 'File', mode: 0o644, size: 8 ** 11, mtime: 5 }],
  ['a time before 1970', { path: 'old', type: 'File', mode: 0o644, size: 1, mtime: -1 }],
];
for (const [name, fields] of OTHERS) {
  test(`${name}: left to node-tar, the block untouched`, () => {
    const block = Buffer.alloc(512, 0xaa);
    assert.not.ok(encodeUstarHeader(fields, block));
    assert.ok(block.every((byte) => byte === 0xaa));
  });
}

test.run();
