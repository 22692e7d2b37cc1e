import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ninjaCommandsName, rewriteNinjaDeps, rewriteNinjaLog } from '../../src/core/ninja.js';

const test = suite('ninja records');
const plusOne = (ns: bigint) => ns + 1_000_000_000n;

/** A version-4 deps log as ninja 1.11 writes it: path records (padded, ~id) and one deps record. */
function depsLog(paths: string[], out: number, mtime: bigint, inputs: number[]): Buffer {
  const parts: Buffer[] = [Buffer.from('# ninjadeps\n'), Buffer.from([4, 0, 0, 0])];
  paths.forEach((path, id) => {
    const name = Buffer.from(path);
    const padded = Buffer.concat([name, Buffer.alloc((4 - (name.length % 4)) % 4)]);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(padded.length + 4);
    const checksum = Buffer.alloc(4);
    checksum.writeUInt32LE(~id >>> 0);
    parts.push(head, padded, checksum);
  });
  const record = Buffer.alloc(16 + 4 * inputs.length);
  record.writeUInt32LE(((12 + 4 * inputs.length) | 0x80000000) >>> 0, 0);
  record.writeInt32LE(out, 4);
  record.writeUInt32LE(Number(mtime & 0xffffffffn), 8);
  record.writeUInt32LE(Number(mtime >> 32n), 12);
  inputs.forEach((id, i) => record.writeInt32LE(id, 16 + 4 * i));
  parts.push(record);
  return Buffer.concat(parts);
}

test('.ninja_log: each entry\'s mtime is mapped, everything else kept', () => {
  const log = Buffer.from('# ninja log v5\n0\t72\t1796586297870239189\ta.o\ted36089e3b2fb971\n3\t9\t0\tb.o\t1234\n');
  assert.is(rewriteNinjaLog(log, plusOne)!.toString(),
    '# ninja log v5\n0\t72\t1796586298870239189\ta.o\ted36089e3b2fb971\n3\t9\t1000000000\tb.o\t1234\n');
  assert.is(rewriteNinjaLog(Buffer.from('# ninja log v4\n1\t2\t3\ta\tb\n'), plusOne), undefined, 'an unknown version is left alone');
});

test('.ninja_deps: mtimes mapped in place, paths rewritten with their padding redone', () => {
  const mtime = 1796586297870239189n;
  const log = depsLog(['a.o', 'a.c', '/old/root/inc/x.h'], 0, mtime, [1, 2]);
  const same = rewriteNinjaDeps(log, (ns) => ns)!;
  assert.equal(same, log, 'identity maps give the same bytes');
  const moved = rewriteNinjaDeps(log, plusOne, (path) => Buffer.from(path.toString().replace('/old/root', '/new/longer/root')))!;
  assert.equal(moved, depsLog(['a.o', 'a.c', '/new/longer/root/inc/x.h'], 0, mtime + 1_000_000_000n, [1, 2]));
  assert.is(rewriteNinjaDeps(log.subarray(0, log.length - 3), plusOne), undefined, 'a damaged log is left alone');
});

test('commands naming the root: CMake-style absolute inputs yes, Meson-style relative ones and generators no', () => {
  const cmake = 'rule CC\n  command = gcc $FLAGS -o $out -c $in\nbuild CMakeFiles/a.dir/a.c.o: CC /src/root/a.c\n  FLAGS = -O2\n';
  assert.ok(ninjaCommandsName(cmake, '/src/root'));
  const meson = 'rule c_COMPILER\n  command = cc $ARGS -o $out -c $in\nrule REGENERATE_BUILD\n  command = meson --internal regenerate /src/root .\n'
    + '  generator = 1\nbuild a.o: c_COMPILER ../a.c\n  ARGS = -I../inc\nbuild build.ninja: REGENERATE_BUILD ../meson.build\n'
    + 'build all: phony /src/root/x\n';
  assert.not.ok(ninjaCommandsName(meson, '/src/root'));
  assert.ok(ninjaCommandsName('rule R\n  command = /src/root/tool $in\nbuild x: R y\n', '/src/root'), 'a rule whose command names it');
  assert.ok(ninjaCommandsName('rule R\n  command = cc $\n    -I/src/root/inc $in\nbuild x: R y\n', '/src/root'), 'across a $-continued line');
});

test.run();
