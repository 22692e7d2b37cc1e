// The host daemon (`serve`) in front of a real S3 server, reached by builds over a Unix socket:
// no credentials and no network on the build's side.
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, unitName } from '../bench/c-project.js';
import { nixLikeBuild } from './build.js';
import { startDaemon as startDaemonProcess, type DaemonProcess as Daemon } from './daemon-process.js';
import { runCli, runCommand, tempDir, writeTree } from './helpers.js';
import { isArchive, startProxy, type Proxy } from './proxy.js';
import { startS3, type TestS3 } from './s3-server.js';

const DAEMON_STORE = new URL('../src/stores/daemon.js', import.meta.url).href;
const test = suite('the host daemon in front of S3, over a Unix socket');
const SECRET = 'nbc-DAEMON-secret-7d1e94';
let s3: TestS3;
let work: string;
let remove: () => Promise<void>;
const running = new Set<Daemon>();

/** Starts a daemon named `name` (its own directory), stopped after the suite if still running. */
async function startDaemon(name: string, extra: string[] = [], endpoint = s3.endpoint): Promise<Daemon> {
  const daemon = await startDaemonProcess(join(work, name), s3, SECRET, extra, endpoint);
  running.add(daemon);
  return daemon;
}

test.before(async () => {
  s3 = await startS3('nbc-daemon');
  ({ dir: work, remove } = await tempDir('nbc-daemon-'));
});
test.after(async () => {
  for (const daemon of running) await daemon.stop();
  await s3.close();
  await remove();
});

const UNITS = 6;
const ALL = ['main.c', ...Array.from({ length: UNITS }, (_, i) => `${unitName(i + 1)}.c`)].sort();
const edit = (files: Record<string, string>, unit: number) =>
  ({ ...files, [`${unitName(unit)}.c`]: `${files[`${unitName(unit)}.c`]}/* edited */\n` });
/** The build's whole environment: the store's address, nothing else (no credentials, no endpoint). */
const buildEnv = (daemon: Daemon) => ({ NBC_STORE: `unix://${daemon.socket}` });

test('builds save and restore through the daemon: exact warm build, no credentials on the build side, the disk cache serves repeats', async () => {
  const daemon = await startDaemon('main', ['--disk-cache', join(work, 'main', 'disk')]);
  assert.is(lstatSync(daemon.socket).mode & 0o777, 0o660, 'the socket is 0660 (group nixbld where it exists)');
  const files = cProject({ units: UNITS });
  const cold = await nixLikeBuild(work, buildEnv(daemon), files, 'repo/main');
  assert.equal(cold.compiled, ALL);
  assert.is(cold.report.outcome, 'miss');
  const warm = await nixLikeBuild(work, buildEnv(daemon), edit(files, 2), 'repo/main');
  assert.is(warm.report.outcome, 'hit');
  assert.equal(warm.compiled, [`${unitName(2)}.c`]);
  assert.match(daemon.log.join('\n'), /PUT repo\/main\/\S+ 201 /);
  assert.match(daemon.log.join('\n'), /GET repo\/main\/\S+ 200 .* from disk/, 'the daemon saved through its disk cache, so the restore read the disk');
  const again = await nixLikeBuild(work, buildEnv(daemon), edit(files, 2), 'repo/main');
  assert.equal(again.compiled, []);
  assert.not.match(`${cold.restoreOutput}${warm.restoreOutput}${warm.saveOutput}`, /warning/);
  await daemon.stop();
});

test('a daemon that is not running: one warning naming the fix, the build compiles everything and succeeds', async () => {
  const socket = join(work, 'nobody', 'socket');
  const files = cProject({ units: UNITS });
  const build = await nixLikeBuild(work, { NBC_STORE: `unix://${socket}` }, files, 'repo/down', { saveSays: /save: error/ });
  assert.equal(build.compiled, ALL);
  const warnings = build.restoreOutput.split('\n').filter((line) => line.includes('warning'));
  assert.is(warnings.length, 1, build.restoreOutput);
  assert.match(warnings[0]!, /ENOENT.*is nix-build-cache serve running/);
  assert.match(build.saveOutput, /warning: save failed, the build goes on: .*is nix-build-cache serve running/);
});

test('the daemon killed in the middle of a download: the build goes on; restarted, the next build hits', async () => {
  // No disk cache, and a proxy that kills the daemon once the archive's first bytes came from S3.
  let daemon: Daemon | undefined;
  let kills = 0;
  const proxy: Proxy = await startProxy(s3.port, (req, _res, forward) => forward(() => {
    if (req.method === 'GET' && isArchive(req) && daemon && kills === 0) {
      kills = 1;
      daemon.process.kill('SIGKILL');
    }
    return true;
  }));
  try {
    daemon = await startDaemon('killed', [], proxy.endpoint);
    const files = { ...cProject({ units: UNITS }) };
    const cold = await nixLikeBuild(work, buildEnv(daemon), files, 'repo/killed', {
      beforeSave: (root) => writeTree(root, { 'obj/padding.bin': randomBytes(8 << 20) }),
    });
    assert.equal(cold.compiled, ALL);
    const interrupted = await nixLikeBuild(work, buildEnv(daemon), edit(files, 3), 'repo/killed', { saveSays: /save: error/ });
    assert.is(kills, 1, 'the daemon was killed during the download');
    assert.is(interrupted.report.outcome, 'miss');
    assert.equal(interrupted.compiled, ALL, 'nothing half-restored: a clean build');
    const restarted = await startDaemon('killed', [], proxy.endpoint);
    const next = await nixLikeBuild(work, buildEnv(restarted), edit(files, 3), 'repo/killed');
    assert.is(next.report.outcome, 'hit', next.restoreOutput);
    assert.equal(next.compiled, [`${unitName(3)}.c`]);
    await restarted.stop();
  } finally {
    // A daemon the test did not kill (a failed assertion) is stopped, or the suite would wait for it.
    if (daemon && kills === 0) await daemon.stop();
    running.delete(daemon!);
    await proxy.close();
  }
});

test('the daemon killed in the middle of an upload: the save warns and the build succeeds; restarted, the next build hits the archive before', async () => {
  let daemon: Daemon | undefined;
  let kills = 0;
  let armed = false;
  // The kill comes as the archive's first request reaches S3, its body still on the way.
  const proxy: Proxy = await startProxy(s3.port, (req, _res, forward) => {
    if (armed && req.method === 'PUT' && isArchive(req) && daemon && kills === 0) {
      kills = 1;
      daemon.process.kill('SIGKILL');
    }
    forward();
  });
  try {
    daemon = await startDaemon('killed-upload', [], proxy.endpoint);
    const files = cProject({ units: UNITS });
    await nixLikeBuild(work, buildEnv(daemon), files, 'repo/killed-upload');
    armed = true;
    const interrupted = await nixLikeBuild(work, buildEnv(daemon), edit(files, 5), 'repo/killed-upload', {
      beforeSave: (root) => writeTree(root, { 'obj/padding.bin': randomBytes(8 << 20) }),
      saveSays: /warning: save failed, the build goes on/,
    });
    assert.is(kills, 1, 'the daemon was killed during the upload');
    assert.equal(interrupted.compiled, [`${unitName(5)}.c`]);
    const restarted = await startDaemon('killed-upload', [], proxy.endpoint);
    const next = await nixLikeBuild(work, buildEnv(restarted), edit(files, 5), 'repo/killed-upload');
    assert.is(next.report.outcome, 'hit', next.restoreOutput);
    assert.equal(next.compiled, [`${unitName(5)}.c`], 'the cold build\'s archive, whole: the interrupted upload left nothing behind');
    await restarted.stop();
  } finally {
    // A daemon the test did not kill (a failed assertion) is stopped, or the suite would wait for it.
    if (daemon && kills === 0) await daemon.stop();
    running.delete(daemon!);
    await proxy.close();
  }
});

test('policy: a read-only daemon serves restores and refuses saves; an object over --max-object-size is refused', async () => {
  const writer = await startDaemon('policy-writer');
  const files = cProject({ units: UNITS });
  await nixLikeBuild(work, buildEnv(writer), files, 'repo/policy');
  await writer.stop();
  const readOnly = await startDaemon('policy-ro', ['--read-only']);
  const build = await nixLikeBuild(work, buildEnv(readOnly), edit(files, 1), 'repo/policy', { saveSays: /save: error/ });
  assert.is(build.report.outcome, 'hit');
  assert.match(build.saveOutput, /warning: save failed, the build goes on: write repo\/policy\/\S+ failed \(HTTP 403\): this daemon is read-only/);
  await readOnly.stop();
  const small = await startDaemon('policy-small', ['--max-object-size', '1K']);
  const big = await nixLikeBuild(work, buildEnv(small), edit(files, 4), 'repo/small', { saveSays: /save: error/ });
  assert.match(big.saveOutput, /warning: save failed, the build goes on: write repo\/small\/\S+ failed \(HTTP 413\): objects are limited to 1024 bytes/);
  await small.stop();
  assert.is(readdirSync(join(work, 'policy-small', 'run')).length, 0, 'a stopped daemon removes its socket');
});

/** Puts, gets and deletes one object through the daemon as `uid` (primary group `gid`, supplementary `groups`). */
async function asUser(socket: string, uid: number, gid: number, groups: number[], key: string): Promise<string> {
  const script = `import { DaemonStore } from ${JSON.stringify(DAEMON_STORE)};
    import { Readable } from 'node:stream';
    const store = new DaemonStore(process.argv[1]);
    const outcome = (p) => p.then(() => 'ok', (e) => e.message);
    const put = await outcome(store.put(process.argv[2], Readable.from([Buffer.from('archive')])));
    const got = await outcome(store.get(process.argv[2]).then((body) => { if (!body) throw new Error('missing'); }));
    const removed = await outcome(store.delete(process.argv[2]));
    console.log(JSON.stringify({ put, got, removed }));`;
  const groupFlag = groups.length ? `--groups=${groups.join(',')}` : '--clear-groups';
  const run = await runCommand('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, groupFlag, process.execPath, '--input-type=module', '-e', script, socket, key], { cwd: work });
  assert.is(run.code, 0, run.stderr);
  return run.stdout.trim();
}

test('policy: --writer lets only the named users and the members of named groups save and delete; everyone in the socket group reads', async () => {
  chmodSync(work, 0o755);
  const [GROUP, WRITER, WRITERS_GROUP, MEMBER, OTHER] = [30010, 30011, 30012, 30013, 30014];
  const daemon = await startDaemon('writers', ['--socket-group', String(GROUP), '--writer', String(WRITER), '--writer', `@${WRITERS_GROUP}`]);
  assert.match(daemon.log.join('\n'), /writes from 30011 @30012 only/);
  const allowed = JSON.stringify({ put: 'ok', got: 'ok', removed: 'ok' });
  assert.is(await asUser(daemon.socket, WRITER, GROUP, [], 'policy/by-uid'), allowed);
  assert.is(await asUser(daemon.socket, MEMBER, GROUP, [WRITERS_GROUP], 'policy/by-group'), allowed);
  const refused = JSON.parse(await asUser(daemon.socket, OTHER, GROUP, [], 'policy/refused')) as Record<string, string>;
  assert.match(refused.put!, /write policy\/refused failed \(HTTP 403\): uid 30014 may not write to this daemon/);
  assert.is(refused.got, 'missing', 'a refused write stores nothing');
  assert.match(refused.removed!, /HTTP 403/);
  assert.match(daemon.log.join('\n'), /PUT policy\/refused 403 .* uid 30014/, 'the log names the peer');
  await daemon.stop();
  const unknown = await runCli(['serve', '--socket', join(work, 'unknown', 'socket'), '--store', join(work, 'unknown', 'store'), '--writer', '@no-such-group-nbc'], { cwd: work });
  assert.is(unknown.code, 1);
  assert.match(unknown.stderr, /--writer: no such group no-such-group-nbc/);
});

test('ls and prune work through the daemon; the daemon\'s own log never shows the secret', async () => {
  const daemon = await startDaemon('manage');
  const store = ['--store', `unix://${daemon.socket}`];
  const listed = await runCli(['ls', ...store], { cwd: work });
  assert.match(listed.stdout, /repo\/main\s/);
  const pruned = await runCli(['prune', ...store, '--older-than', '0s'], { cwd: work });
  assert.is(pruned.code, 0, pruned.stderr);
  assert.match((await runCli(['ls', ...store], { cwd: work })).stderr, /ls: 0 archives/);
  await daemon.stop();
  assert.not.match(daemon.log.join('\n'), new RegExp(SECRET));
});

test.run();
