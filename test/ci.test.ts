import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, snapshot, tempDir, writeTree } from './helpers.js';

const test = suite('CI outputs');
let dir: string;
let remove: () => Promise<void>;
test.before.each(async () => { ({ dir, remove } = await tempDir()); });
test.after.each(() => remove());

interface Restored { result: string; matchedKey: string | null; outcome: string; lookupOnly?: boolean }

/** A source tree with a cache "main" saved from it; returns the arguments that reach it. */
async function savedMain(): Promise<{ root: string; args: (name: string) => string[] }> {
  const root = join(dir, 'src');
  writeTree(root, { 'a.c': 'a' });
  const args = (name: string) => ['--cache-name', name, '--cache-dir', 'obj', '--store', join(dir, 'store'), '--state-dir', join(dir, `state-${name}`)];
  assert.is((await runCli(['restore', ...args('main')], { cwd: root })).code, 0);
  writeTree(join(root, 'obj'), { 'a.o': 'object' });
  assert.match((await runCli(['save', ...args('main')], { cwd: root })).stderr, /save: saved/);
  rmSync(join(root, 'obj'), { recursive: true });
  return { root, args };
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Restored;

test('summary and JSON say hit, fallback or miss and the key that hit', async () => {
  const { root, args } = await savedMain();
  const report = join(dir, 'r.json');
  const hit = await runCli(['restore', ...args('main'), '--json', report], { cwd: root });
  assert.match(hit.stderr, /restore: hit main, key main\/v2-\w+\.tar\.zst; /);
  assert.match(json(report).matchedKey ?? '', /^main\/v2-\w+\.tar\.zst$/);
  assert.is(json(report).result, 'hit');
  rmSync(join(root, 'obj'), { recursive: true });
  const fallback = await runCli(['restore', ...args('feature'), '--fallback', 'main', '--json', report], { cwd: root });
  assert.match(fallback.stderr, /restore: hit main \(fallback\), key main\/v2-\w+\.tar\.zst; /);
  assert.is(json(report).result, 'fallback');
  const miss = await runCli(['restore', ...args('other'), '--json', report], { cwd: join(dir) });
  assert.match(miss.stderr, /restore: miss \(tried other: missing\)/);
  assert.is(json(report).result, 'miss');
  assert.is(json(report).matchedKey, null);
});

test('--lookup-only says whether there is a hit and changes nothing', async () => {
  const { root, args } = await savedMain();
  const before = snapshot(dir);
  const report = join(root, '..', 'lookup.json');
  const hit = await runCli(['restore', ...args('feature'), '--fallback', 'main', '--lookup-only', '--json', '-'], { cwd: root });
  assert.is(hit.code, 0, hit.stderr);
  assert.match(hit.stderr, /restore: hit main \(fallback\), key main\/v2-\w+\.tar\.zst \(lookup only: nothing downloaded or changed\)/);
  assert.equal(JSON.parse(hit.stdout).result, 'fallback');
  assert.equal(snapshot(dir), before, 'nothing in the tree, store or state dirs changed');
  assert.not.ok(existsSync(join(dir, 'state-feature')));
  const miss = await runCli(['restore', ...args('nothing'), '--lookup-only', '--fail-on-miss', '--json', report], { cwd: root });
  assert.is(miss.code, 1);
  assert.match(miss.stderr, /restore: miss \(tried nothing: missing\) \(lookup only[^\n]*\nnix-build-cache restore: no cache found \(--fail-on-miss\)\n$/);
  assert.is(json(report).lookupOnly, true);
});

test('--fail-on-miss exits 1 on a miss, after leaving the state a save needs; 0 on a hit', async () => {
  const { root, args } = await savedMain();
  const hit = await runCli(['restore', ...args('main'), '--fail-on-miss'], { cwd: root });
  assert.is(hit.code, 0, hit.stderr);
  rmSync(join(root, 'obj'), { recursive: true });
  const before = snapshot(root);
  const miss = await runCli(['restore', ...args('fresh'), '--fail-on-miss'], { cwd: root });
  assert.is(miss.code, 1);
  assert.match(miss.stderr, /no cache restored \(--fail-on-miss\)/);
  assert.equal(snapshot(root), before, 'a miss leaves the sources as they were');
  writeTree(join(root, 'obj'), { 'a.o': 'built' });
  assert.match((await runCli(['save', ...args('fresh')], { cwd: root })).stderr, /save: saved fresh/);
});

test('in GitHub Actions the step outputs say cache-hit (exact hits only), the result and the key', async () => {
  const { root, args } = await savedMain();
  const outputs = join(dir, 'github-output');
  const env = { GITHUB_OUTPUT: outputs };
  await runCli(['restore', ...args('feature'), '--fallback', 'main'], { cwd: root, env });
  assert.match(readFileSync(outputs, 'utf8'), /^cache-hit=false\ncache-result=fallback\ncache-matched-key=main\/v2-\w+\.tar\.zst\n$/);
  rmSync(join(root, 'obj'), { recursive: true });
  rmSync(outputs);
  await runCli(['restore', ...args('main'), '--lookup-only'], { cwd: root, env });
  assert.match(readFileSync(outputs, 'utf8'), /^cache-hit=true\ncache-result=hit\ncache-matched-key=main\/v2-\w+\.tar\.zst\n$/);
});

test.run();
