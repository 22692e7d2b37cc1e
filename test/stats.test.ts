import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseEvents } from '../src/core/stats.js';
import { runCli, tempDir, writeTree } from './helpers.js';

const test = suite('stats');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

test('restore and save record events beside a directory store; stats sums them per name', async () => {
  const root = join(dir, 'src');
  const store = join(dir, 'store');
  writeTree(root, { 'a.c': 'a', 'b.c': 'b' });
  const args = (name: string) => ['--cache-name', name, '--cache-dir', 'obj', '--store', store, '--state-dir', join(dir, 'state')];
  await runCli(['restore', ...args('main')], { cwd: root });
  writeTree(join(root, 'obj'), { 'a.o': 'a', 'b.o': 'b' });
  await runCli(['save', ...args('main')], { cwd: root });
  rmSync(join(root, 'obj'), { recursive: true });
  writeTree(root, { 'a.c': 'changed' }, 2);
  assert.match((await runCli(['restore', ...args('main')], { cwd: root })).stderr, /restore: hit/);
  rmSync(join(root, 'obj'), { recursive: true });
  await runCli(['restore', ...args('feature'), '--fallback', 'main'], { cwd: root });
  await runCli(['restore', ...args('feature'), '--lookup-only'], { cwd: root });
  // An event from long ago, outside --since 7d.
  const old = { v: 1, time: '2020-01-01T00:00:00.000Z', command: 'restore', cacheName: 'main', result: 'miss', key: null, seconds: 1, files: 1, changed: 1, reused: 0, bytes: 0 };
  appendFileSync(join(store, '.events.jsonl'), `${JSON.stringify(old)}\n`);

  const { events } = parseEvents(readFileSync(join(store, '.events.jsonl'), 'utf8'));
  assert.equal(events.map((e) => `${e.command} ${e.cacheName} ${e.result}`),
    ['restore main miss', 'save main saved', 'restore main hit', 'restore feature fallback', 'restore main miss'], 'lookup-only records nothing');
  assert.is(events[2]!.reused, 2);
  assert.is(events[2]!.changed, 1);

  const all = await runCli(['stats', '--store', store], { cwd: dir });
  assert.is(all.code, 0, all.stderr);
  assert.match(all.stdout, /^NAME +RESTORES +HIT +FALLBACK +MISS +HIT RATE +REUSED +RECOMPILED +RESTORED +SAVED +TIME\n/);
  assert.match(all.stdout, /\nmain +3 +1 +0 +2 +33% +2 +/);
  assert.match(all.stdout, /\nfeature +1 +0 +1 +0 +100% +2 +/);
  assert.match(all.stderr, /stats: 4 restores, hit rate 50%, 4 files reused, .* 1 save in all from .*\.events\.jsonl/);
  const week = await runCli(['stats', '--store', store, '--since', '7d', '--cache-name', 'main', '--json', '-'], { cwd: dir });
  const report = JSON.parse(week.stdout) as { names: { cacheName: string; restores: number; hitRate: number }[] };
  assert.equal(report.names.map((s) => [s.cacheName, s.restores, s.hitRate]), [['main', 2, 0.5]]);
  const bad = await runCli(['stats', '--store', store, '--since', 'last week'], { cwd: dir });
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--since: use a number and s, m, h, d or w/);
});

test('an events file that cannot be written is one warning and the build goes on; off records nothing', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const args = ['--cache-name', 'x', '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', join(dir, 'state')];
  const result = await runCli(['restore', ...args, '--events', join(dir, 'no', 'such', 'events')], { cwd: root });
  assert.is(result.code, 0);
  assert.match(result.stderr, /\nnix-build-cache: warning: cannot record the event for stats in .*no\/such\/events: ENOENT[^\n]*\nnix-build-cache restore: miss/);
  assert.is(result.stderr.split('\n').filter((line) => line.includes('warning')).length, 1);
  writeFileSync(join(dir, 'off'), '');
  await runCli(['restore', ...args, '--events', 'off'], { cwd: root });
  const none = await runCli(['stats', '--events', join(dir, 'off')], { cwd: dir });
  assert.is(none.stdout, '');
  assert.match(none.stderr, /stats: 0 restores, hit rate -/);
});

test('for other stores the events go to $XDG_STATE_HOME/nix-build-cache/events.jsonl', async () => {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const env = { XDG_STATE_HOME: join(dir, 'state-home') };
  const store = ['--store', `unix://${join(dir, 'no-daemon.sock')}`];
  const restored = await runCli(['restore', '--cache-name', 'x', '--cache-dir', 'obj', ...store, '--state-dir', join(dir, 'state')], { cwd: root, env });
  assert.match(restored.stderr, /restore: miss \(tried x: unusable\)/);
  const { events } = parseEvents(readFileSync(join(dir, 'state-home', 'nix-build-cache', 'events.jsonl'), 'utf8'));
  assert.equal(events.map((e) => [e.cacheName, e.result]), [['x', 'miss']]);
  const stats = await runCli(['stats', ...store, '--json', '-'], { cwd: dir, env });
  assert.is((JSON.parse(stats.stdout) as { total: { restores: number; misses: number } }).total.misses, 1);
});

test('concurrent appends from many processes never interleave', async () => {
  const file = join(dir, 'events.jsonl');
  const events = new URL('../src/events.js', import.meta.url).href;
  const script = `const { appendEvent } = await import(${JSON.stringify(events)});
    const name = 'n'.repeat(180) + process.argv[1];
    await Promise.all(Array.from({ length: 200 }, (_, i) => appendEvent(${JSON.stringify(file)}, { v: 1, time: new Date().toISOString(), command: 'restore',
      cacheName: name, result: 'hit', key: name + '/v2-0123456789abcdef.tar.zst', seconds: i, files: i, bytes: i })));`;
  const writers = Array.from({ length: 6 }, (_, i) => new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, `${i}`], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  }));
  assert.equal(await Promise.all(writers), [0, 0, 0, 0, 0, 0]);
  const { events: read, bad } = parseEvents(readFileSync(file, 'utf8'));
  assert.is(bad, 0);
  assert.is(read.length, 1200);
});

test.run();
