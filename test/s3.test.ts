import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cProject, unitName } from '../bench/c-project.js';
import { save } from '../src/save.js';
import { S3Store } from '../src/stores/s3.js';
import { nixLikeBuild } from './build.js';
import { runCli, snapshot, tempDir, type CliResult, warningsOf, writeTree } from './helpers.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

const SECRET = 'nbc-TEST-secret-9f8e7d6c5b';
// This process makes clients of its own (the failing one); the SDK's Node-version notice is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const test = suite('S3 store against s3rver on 127.0.0.1');
let s3: TestS3;
let work: string;
let remove: () => Promise<void>;
const outputs: string[] = [];

test.before(async () => {
  s3 = await startS3();
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  await s3.close();
  await remove();
});

function s3Env(extra: Record<string, string> = {}): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, NBC_STORE: `s3://${s3.bucket}/ci`, NBC_S3_ENDPOINT: s3.endpoint, ...extra };
}

async function cli(args: string[], cwd: string, env: Record<string, string>): Promise<CliResult> {
  const result = await runCli(args, { cwd, env });
  outputs.push(result.stdout, result.stderr);
  return result;
}

/** A source tree with an artifact dir, restored with `args`; asserts the one-warning, unchanged-tree outcome. */
async function restoreFailsOpen(env: Record<string, string>, args: string[], warning: RegExp): Promise<number> {
  const root = await mkdtemp(join(work, 'src-'));
  writeTree(root, { 'a.c': 'int a;\n', 'obj/keep': 'source\n' });
  const before = snapshot(root);
  const started = Date.now();
  const result = await cli(['restore', '--cache-name', 'main', '--cache-dir', 'obj', '--state-dir', join(root, '..', `${root.split('/').pop()}-state`), ...args], root, env);
  const seconds = (Date.now() - started) / 1000;
  assert.is(result.code, 0, result.stderr);
  const warnings = warningsOf(result.stderr);
  assert.is(warnings.length, 1, result.stderr);
  assert.match(warnings[0]!, warning);
  assert.equal(snapshot(root), before);
  return seconds;
}

const BLOB = randomBytes(12 << 20);

test('make round trip through the CLI with a multipart archive (5 MiB parts)', async () => {
  const files = cProject({ units: 6 });
  const env = s3Env();
  const addBlob = (root: string) => writeFileSync(join(root, 'obj', 'blob.bin'), BLOB);
  const cold = await nixLikeBuild(work, env, files, 'main', { beforeSave: addBlob, saveArgs: ['--part-size', '5'] });
  assert.is(cold.compiled.length, 7);
  assert.match(cold.saveOutput, /save: saved main/);
  outputs.push(cold.restoreOutput, cold.saveOutput);
  const parts = readdirSync(join(s3.directory, s3.bucket, 'ci', 'main'));
  assert.ok(parts.some((name) => name.endsWith('.tar.zst._S3rver_object')), `archive stored: ${parts.join(' ')}`);
  const edited = { ...files, [`${unitName(2)}.c`]: `${files[`${unitName(2)}.c`]}/* edit */\n` };
  const warm = await nixLikeBuild(work, env, edited, 'main');
  outputs.push(warm.restoreOutput, warm.saveOutput);
  assert.is(warm.report.outcome, 'hit');
  assert.equal(warm.compiled, [`${unitName(2)}.c`]);
  assert.ok(readFileSync(join(warm.root, 'obj', 'blob.bin')).equals(BLOB), 'blob restored byte for byte');
});

test('dead endpoint (closed port): one warning, tree unchanged, in well under 10 s with defaults', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as { port: number };
  await new Promise((resolve) => closed.close(resolve));
  const seconds = await restoreFailsOpen(s3Env({ NBC_S3_ENDPOINT: `http://127.0.0.1:${port}` }), [],
    /cache main is unusable.*download s3:\/\/nbc-test\/ci\/main\/v2-\w+\.tar\.zst failed: .*ECONNREFUSED.*is the endpoint right/);
  assert.ok(seconds < 10, `took ${seconds} s`);
});

test('a server that accepts and never answers: bounded by the socket timeout', async () => {
  const held: Socket[] = [];
  const silent: Server = createServer((socket) => { held.push(socket); });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  try {
    const seconds = await restoreFailsOpen(s3Env({ NBC_S3_ENDPOINT: `http://127.0.0.1:${port}` }), ['--socket-timeout', '0.5'],
      /download .* failed: TimeoutError.*is the endpoint right/);
    assert.ok(seconds < 10, `took ${seconds} s`);
  } finally {
    held.forEach((socket) => socket.destroy());
    await new Promise((resolve) => silent.close(resolve));
  }
});

test('a download cut mid-archive: one warning, tree unchanged', async () => {
  // Forwards to s3rver, but cuts the archive's body after 64 KiB.
  const proxy: HttpServer = createHttpServer((req, res) => {
    const upstream = request({ host: '127.0.0.1', port: s3.port, path: req.url, method: req.method, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      const cut = req.method === 'GET' && /\.tar\.zst$/.test(new URL(req.url ?? '/', 'http://x').pathname);
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (cut && sent + chunk.length > 65536) {
          res.socket?.destroy();
          answer.destroy();
          return;
        }
        sent += chunk.length;
        res.write(chunk);
      });
      answer.on('end', () => res.end());
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as { port: number };
  try {
    await restoreFailsOpen(s3Env({ NBC_S3_ENDPOINT: `http://127.0.0.1:${port}` }), [],
      /cache main is unusable.*(ECONNRESET|aborted|socket hang up|terminated|premature)/i);
  } finally {
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  }
});

test('unknown access key and missing bucket: one warning each, with status and hint', async () => {
  await restoreFailsOpen(s3Env({ AWS_ACCESS_KEY_ID: 'NOT-A-KEY' }), [],
    /download s3:\/\/nbc-test\/ci\/main\/.* failed \(HTTP 403\): InvalidAccessKeyId.*; check the credentials/);
  await restoreFailsOpen(s3Env({ NBC_STORE: 's3://no-such-bucket/ci' }), [],
    /download s3:\/\/no-such-bucket\/ci\/main\/.* failed \(HTTP 404\): NoSuchBucket.*; check the bucket name/);
});

/** A client whose Nth UploadPart fails, as a flaky network or server would make it. */
class FailingClient extends S3Client {
  parts = 0;
  constructor(readonly failAt: number) {
    super({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  }
  override send = ((command: unknown, options?: unknown) => {
    if (command instanceof UploadPartCommand && ++this.parts === this.failAt) {
      return Promise.reject(Object.assign(new Error('injected failure of part 2'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } }));
    }
    return (super.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, options);
  }) as S3Client['send'];
}

test('the 2nd part failing aborts the upload; the previous archive still restores', async () => {
  const files = cProject({ units: 3 });
  const env = s3Env();
  await nixLikeBuild(work, env, files, 'flaky');
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, files);
  assert.is((await cli(['restore', '--cache-name', 'flaky', '--cache-dir', 'obj'], root, { ...env, NIX_BUILD_TOP: top })).code, 0);
  writeFileSync(join(root, 'obj', 'blob.bin'), BLOB);
  const client = new FailingClient(2);
  const warnings: string[] = [];
  const report = await save({
    store: new S3Store(s3.bucket, 'ci', { partSize: 5 << 20 }, client), cacheName: 'flaky', cacheDirs: ['obj'],
    stateDir: join(top, '.nix-build-cache'), onWarning: (w) => warnings.push(w),
  });
  client.destroy();
  assert.is(report.outcome, 'error');
  assert.is(warnings.length, 1);
  assert.match(warnings[0]!, /upload s3:\/\/nbc-test\/ci\/flaky\/.* failed \(HTTP 500\): InternalError: injected failure of part 2; the server failed/);
  const again = await nixLikeBuild(work, env, files, 'flaky');
  assert.is(again.report.outcome, 'hit', again.restoreOutput);
  assert.equal(again.compiled, []);
});

test('ls lists caches; prune --dry-run lists what prune then deletes, and only that', async () => {
  const env = s3Env({ NBC_STORE: `s3://${s3.bucket}/managed` });
  const files = cProject({ units: 2 });
  for (const name of ['alpha', 'beta']) await nixLikeBuild(work, env, files, name);
  const ls = await cli(['ls'], work, env);
  assert.is(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^NAME\s+SIZE\s+AGE\s+KEY\nalpha\s+[\d.]+ MB\s+\d+m\s+alpha\/v2-\w+\.tar\.zst\nbeta\s+.*beta\/v2-\w+\.tar\.zst\n$/);
  const dry = await cli(['prune', '--older-than', '0s', '--dry-run'], work, env);
  assert.match(dry.stdout, /would delete\s+alpha .*\nwould delete\s+beta /);
  assert.match((await cli(['ls'], work, env)).stdout, /alpha[\s\S]*beta/, 'dry run deleted nothing');
  const kept = await cli(['prune', '--keep', '1'], work, env);
  assert.is(kept.stdout, '', 'one archive per name: --keep 1 deletes nothing');
  // A second, newer archive of alpha (another compression is another key): --keep 1 now selects the older.
  await nixLikeBuild(work, env, files, 'alpha', { extraArgs: ['--compression', 'none'], saveArgs: ['--compression', 'none'] });
  const keepDry = await cli(['prune', '--keep', '1', '--dry-run'], work, env);
  assert.match(keepDry.stdout, /^would delete\s+alpha\s.*alpha\/v2-\w+\.tar\.zst\n$/);
  const keepOne = await cli(['prune', '--keep', '1'], work, env);
  assert.is(keepOne.stdout, keepDry.stdout.replace(/would delete /g, 'deleted '));
  assert.match((await cli(['ls'], work, env)).stdout, /\nalpha\s.*alpha\/v2-\w+\.tar\n(?!alpha)beta\s/);
  const pruned = await cli(['prune', '--older-than', '0s'], work, env);
  assert.match(pruned.stdout, /deleted\s+alpha[\s\S]*deleted\s+beta/);
  assert.is((await cli(['ls'], work, env)).stdout, '');
  const managed = join(s3.directory, s3.bucket, 'managed');
  const left = existsSync(managed) ? readdirSync(managed, { recursive: true }) as string[] : [];
  assert.equal(left.filter((name) => name.endsWith('._S3rver_object')), [], 'archives and their digests are gone');
});

test('credentials from --credentials-file (AWS format) instead of the environment', async () => {
  const file = join(work, 'credentials');
  writeFileSync(file, `[default]\naws_access_key_id = ${ACCESS_KEY_ID}\naws_secret_access_key = ${SECRET}\n`, { mode: 0o600 });
  const env = { NBC_STORE: `s3://${s3.bucket}/ci`, NBC_S3_ENDPOINT: s3.endpoint };
  const build = await nixLikeBuild(work, env, cProject({ units: 6 }), 'main', { extraArgs: ['--credentials-file', file], saveArgs: ['--credentials-file', file] });
  outputs.push(build.restoreOutput, build.saveOutput);
  assert.is(build.report.outcome, 'hit', build.restoreOutput);
  const missing = await cli(['restore', '--cache-name', 'main', '--cache-dir', 'obj', '--credentials-file', join(work, 'nope')], work, env);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /--credentials-file: cannot read .*nope \(ENOENT\)/);
});

test('every command, passing and failing, with the secret as a flag and in reports', async () => {
  const root = await mkdtemp(join(work, 'flags-'));
  writeTree(root, { 'a.c': 'a', 'obj/keep': 'k' });
  const flags = ['--access-key-id', ACCESS_KEY_ID, '--secret-access-key', SECRET, '--store', `s3://${s3.bucket}/flags`, '--endpoint', s3.endpoint];
  const build = ['--cache-name', 'flags', '--cache-dir', 'obj', '--state-dir', join(root, '..', 'flags-state')];
  const runs: [string, string[]][] = [
    ['restore', [...build, ...flags]], ['save', [...build, ...flags]], ['ls', flags], ['prune', [...flags, '--keep', '5', '--dry-run']],
    ['hash', []],
    // Failing: an unknown key id (the SDK's error message), a dead endpoint, a bad option.
    ['restore', [...build, ...flags, '--access-key-id', 'UNKNOWN']], ['save', [...build, ...flags, '--access-key-id', 'UNKNOWN']],
    ['ls', [...flags, '--endpoint', 'http://127.0.0.1:9']], ['prune', [...flags, '--older-than', 'never']],
  ];
  for (const [index, [command, args]] of runs.entries()) {
    const result = await cli([command, ...args, '--json', join(work, `report-${index}.json`)], root, {});
    assert.ok([0, 1, 2].includes(result.code), `${command}: ${result.stderr}`);
  }
  assert.match(outputs.slice(-4).join(''), /InvalidAccessKeyId|ECONNREFUSED|--older-than/);
});

test('the secret appears in no output, report or file the tool wrote', async () => {
  assert.ok(outputs.length > 10);
  for (const text of outputs) assert.not.ok(text.includes(SECRET), 'secret printed');
  const written = readdirSync(work, { recursive: true }) as string[];
  for (const name of written.filter((path) => path !== 'credentials')) {
    try {
      assert.not.ok(readFileSync(join(work, name)).includes(SECRET), `secret in ${name}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
    }
  }
});

test.run();
