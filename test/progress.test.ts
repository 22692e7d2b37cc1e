import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { phaseLine, progressLine, type Progress } from '../src/progress.js';
import { restore } from '../src/restore.js';
import { save } from '../src/save.js';
import { CLI, runCli, runCommand, tempDir, writeTree } from './helpers.js';

const test = suite('progress');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

test('a terminal line has counts, bytes, rate and, with a known total, ETA; a log line the time', () => {
  const apply: Progress = { phase: 'apply', files: 50, bytes: 5e6, totalFiles: 100, totalBytes: 20e6, done: false, seconds: 2 };
  assert.is(progressLine(apply), 'apply 50/100 files, 5.0/20.0 MB, 2.5 MB/s, ETA 6 s');
  assert.is(progressLine({ phase: 'fetch', files: 0, bytes: 3e6, done: false, seconds: 0.5 }), 'fetch 3.0 MB, 6.0 MB/s');
  assert.is(phaseLine({ phase: 'hash', files: 1, bytes: 1234567, done: true, seconds: 0.125 }), 'hash: 1 file, 1.2 MB in 0.13 s');
  assert.is(phaseLine({ phase: 'upload', files: 0, bytes: 2e6, done: true, seconds: 1 }), 'upload: 2.0 MB in 1.00 s');
});

test('the library tells every phase of restore and save, each ending once with its counts', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a', 'b.c': 'bb' });
  const options = { store: join(dir, 'store'), cacheName: 'p', cacheDirs: ['obj'], root, stateDir: join(dir, 'state') };
  const ended: Progress[] = [];
  const onProgress = (p: Progress) => { if (p.done) ended.push(p); };
  await restore({ ...options, onProgress });
  assert.equal(ended.map((p) => [p.phase, p.files, p.bytes]), [['hash', 2, 3]]);
  writeTree(join(root, 'obj'), { 'a.o': Buffer.alloc(100_000, 1) });
  ended.length = 0;
  const saved = await save({ ...options, onProgress });
  assert.equal(ended.map((p) => p.phase), ['pack', 'upload']);
  assert.equal([ended[0]!.files, ended[0]!.bytes], [1, 100_000]);
  assert.is(ended[1]!.bytes, saved.archiveBytes);
  rmSync(join(root, 'obj'), { recursive: true });
  ended.length = 0;
  await restore({ ...options, onProgress });
  assert.equal(ended.map((p) => p.phase), ['hash', 'fetch', 'unpack', 'apply']);
  assert.is(ended[1]!.bytes, saved.archiveBytes);
  assert.is(ended[1]!.totalBytes, saved.archiveBytes, 'the store told the size before the download: the fetch has an ETA');
  assert.equal(ended.slice(2).map((p) => [p.files, p.bytes]), [[1, 100_000], [1, 100_000]]);
});

test('without a terminal: one plain line per phase, save included; --quiet: none', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const args = ['--cache-name', 'p', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', join(dir, 'state')];
  await runCli(['restore', ...args], { cwd: root });
  writeTree(join(root, 'obj'), { 'a.o': 'o' });
  const saved = await runCli(['save', ...args], { cwd: root });
  assert.match(saved.stderr, /^nix-build-cache save: pack: 1 file, 0\.0 MB in \d+\.\d\d s\nnix-build-cache save: upload: 0\.0 MB in \d+\.\d\d s\nnix-build-cache save: saved/);
  rmSync(join(root, 'obj'), { recursive: true });
  const restored = await runCli(['restore', ...args], { cwd: root });
  const phases = restored.stderr.split('\n').map((line) => /^nix-build-cache restore: (\w+): .* in \d+\.\d\d s$/.exec(line)?.[1]).filter(Boolean);
  assert.equal(phases, ['hash', 'fetch', 'unpack', 'apply']);
  rmSync(join(root, 'obj'), { recursive: true });
  assert.is((await runCli(['restore', ...args, '--quiet'], { cwd: root })).stderr, '');
});

test('on a terminal: one line rewritten in place, cleared before the summary', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const quote = (arg: string) => `'${arg.replace(/'/g, "'\\''")}'`;
  const command = [process.execPath, CLI, 'restore', '--cache-name', 'p', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', join(dir, 'state')];
  // script(1) runs the command on a pseudo-terminal: stderr is a TTY there.
  const run = await runCommand('script', ['-qfec', command.map(quote).join(' '), '/dev/null'], { cwd: root });
  assert.is(run.code, 0, run.stdout);
  assert.match(run.stdout, /^\r\x1b\[Knix-build-cache restore: hash [^\n]*\r\x1b\[Knix-build-cache restore: miss/);
  assert.not.match(run.stdout, /restore: hash: /, 'no log lines on a terminal');
});

test.run();
