import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, snapshot, tempDir, warningsOf, writeTree } from './helpers.js';
import { isArchive, startProxy, type ProxyRule } from './proxy.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from './s3-server.js';

// Hostile and slow servers (#15 item 7). A server that echoes our request (its headers, its URL)
// in its error messages: no credential appears in stdout, stderr or the JSON report. A server that
// trickles: the deadline ends the restore or save with one warning, the tree and the store as before.
const test = suite('hostile and slow servers');
let s3: TestS3;
let work: string;
let remove: () => Promise<void>;
let prefixes = 0;
test.before(async () => {
  s3 = await startS3('hostile-server');
  ({ dir: work, remove } = await tempDir());
});
test.after(async () => {
  await s3.close();
  await remove();
});

const KEY_ID = 'AKIAHOSTILE7TEST9XYZ';
const SECRET = 'hostile/Secret+Key=0123456789abcdefghij';
const TOKEN = 'FwoGZXIvYXdzEHostile//////////SessionToken+With/Slashes==';
const ARGS = ['--cache-name', 'main', '--cache-dir', 'obj', '--compression', 'gzip'];

async function fresh(): Promise<{ top: string; root: string }> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, { 'a.c': 'int a;\n' });
  return { top, root };
}

/** A server on 127.0.0.1 that answers every request with `answer(request, its body)`. */
async function startServer(answer: (req: IncomingMessage, body: string) => { status: number; type: string; body: string }): Promise<{ endpoint: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => { body += chunk.toString('latin1'); });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}\n${JSON.stringify(req.headers)}`);
      const { status, type, body: text } = answer(req, body);
      res.writeHead(status, { 'content-type': type }).end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const echo = (req: IncomingMessage) => `${req.method} ${req.url} ${JSON.stringify(req.headers)}`;
const xml = (code: string, message: string) => `<?xml version="1.0"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>1</RequestId></Error>`;
const ECHOES: [string, (req: IncomingMessage) => { status: number; type: string; body: string }][] = [
  ['403 with the headers in <Message>', (req) => ({ status: 403, type: 'application/xml', body: xml('AccessDenied', echo(req)) })],
  ['400 with the headers in <Code>', (req) => ({ status: 400, type: 'application/xml', body: xml(`Bad${JSON.stringify(req.headers).replace(/[^A-Za-z0-9]/g, '')}`, 'no') })],
  ['500 with the headers as plain text', (req) => ({ status: 500, type: 'text/plain', body: echo(req) })],
  ['403 with the headers one per line, as a proxy prints them', (req) => ({
    status: 403, type: 'application/xml', body: xml('AccessDenied', Object.entries(req.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\n')),
  })],
];

/** Every credential we hold or the server saw that is one: none may appear in `text`. */
function noSecretIn(text: string, seen: readonly string[], what: string): void {
  const signatures = seen.flatMap((line) => [...line.matchAll(/Signature=([0-9a-f]+)/g)].map((m) => m[1]!));
  // The token also as a server might mangle it: its punctuation dropped.
  for (const secret of [KEY_ID, SECRET, TOKEN, encodeURIComponent(TOKEN), encodeURIComponent(SECRET), TOKEN.replace(/[^A-Za-z0-9]/g, ''), ...signatures]) {
    assert.not.ok(text.includes(secret), `${what} holds ${secret.slice(0, 12)}…:\n${text}`);
  }
}

for (const [name, answer] of ECHOES) {
  test(`a server echoing our request (${name}): no credential in any output or report`, async () => {
    const server = await startServer(answer);
    try {
      const { top, root } = await fresh();
      const env = {
        NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: TOKEN,
        NBC_STORE: `s3://${s3.bucket}/echo`, NBC_S3_ENDPOINT: server.endpoint, NBC_S3_MAX_ATTEMPTS: '1',
      };
      const outputs: string[] = [];
      const run = async (args: string[], json: string) => {
        const result = await runCli([...args, '--json', join(top, json)], { cwd: root, env });
        outputs.push(result.stdout, result.stderr, readFileSync(join(top, json), 'utf8'));
        return result;
      };
      const restored = await run(['restore', ...ARGS], 'restore.json');
      assert.is(restored.code, 0, restored.stderr);
      assert.is(warningsOf(restored.stderr).length, 1, restored.stderr);
      writeTree(root, { 'obj/a.o': randomBytes(1000) });
      const saved = await run(['save', ...ARGS], 'save.json');
      assert.is(saved.code, 0, saved.stderr);
      assert.match(saved.stderr, /save failed, the build goes on/);
      const strict = await runCli(['restore', ...ARGS, '--strict'], { cwd: root, env });
      assert.is(strict.code, 1);
      outputs.push(strict.stdout, strict.stderr);
      for (const command of [['ls'], ['prune', '--older-than', '1d']]) {
        const result = await runCli(command, { cwd: root, env });
        outputs.push(result.stdout, result.stderr);
      }
      assert.ok(server.seen.some((line) => line.includes(TOKEN)), 'the server did see the session token (and echoed it)');
      noSecretIn(outputs.join('\n'), server.seen, name);
    } finally {
      await server.close();
    }
  });
}

/** An archive of a 256 KiB artifact saved under a fresh prefix; the prefix. */
async function seeded(): Promise<string> {
  const prefix = `slow${++prefixes}`;
  const { top, root } = await fresh();
  const env = { NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x', NBC_STORE: `s3://${s3.bucket}/${prefix}`, NBC_S3_ENDPOINT: s3.endpoint };
  await runCli(['restore', ...ARGS], { cwd: root, env });
  writeTree(root, { 'obj/a.o': randomBytes(256 << 10) });
  assert.match((await runCli(['save', ...ARGS], { cwd: root, env })).stderr, /save: saved main/);
  return prefix;
}

/** Answers archive downloads 1 KiB every 50 ms (the idle timeout never fires); the rest goes through. */
const trickleDownloads: ProxyRule = (req, res, forward) => {
  if (req.method !== 'GET' || !isArchive(req)) return forward();
  const upstream = request({ host: '127.0.0.1', port: s3.port, path: req.url, method: 'GET', headers: req.headers, agent: false }, (answer) => {
    const chunks: Buffer[] = [];
    answer.on('data', (chunk: Buffer) => chunks.push(chunk));
    answer.on('end', () => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      const data = Buffer.concat(chunks);
      let at = 0;
      const timer = setInterval(() => {
        if (at >= data.length) {
          clearInterval(timer);
          res.end();
        } else res.write(data.subarray(at, at += 1024));
      }, 50);
      res.on('close', () => clearInterval(timer));
    });
  });
  upstream.end();
};

/** Reads uploads 1 KiB every 50 ms and never answers them. */
const trickleUploads: ProxyRule = (req, _res, forward) => {
  if (req.method !== 'PUT' && req.method !== 'POST') return forward();
  req.pause();
  const timer = setInterval(() => req.read(1024), 50);
  req.on('close', () => clearInterval(timer));
};

async function slowRun(command: 'restore' | 'save', rule: ProxyRule, args: string[], env: Record<string, string> = {}) {
  const prefix = await seeded();
  const proxy = await startProxy(s3.port, rule);
  try {
    const { top, root } = await fresh();
    const base = { NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x', NBC_STORE: `s3://${s3.bucket}/${prefix}`, ...env };
    if (command === 'save') {
      await runCli(['restore', ...ARGS], { cwd: root, env: { ...base, NBC_S3_ENDPOINT: s3.endpoint } });
      writeTree(root, { 'obj/b.o': randomBytes(256 << 10) });
    }
    const before = snapshot(root);
    const result = await runCli([command, ...ARGS, ...args], { cwd: root, env: { ...base, NBC_S3_ENDPOINT: proxy.endpoint } });
    return { result, root, top, before, prefix, unchanged: () => assert.equal(snapshot(root), before) };
  } finally {
    await proxy.close();
  }
}

test('a trickling download is given up at --deadline: one warning, exit 0, the tree untouched', async () => {
  const { result, top, unchanged } = await slowRun('restore', trickleDownloads, ['--deadline', '1']);
  assert.is(result.code, 0, result.stderr);
  assert.equal(warningsOf(result.stderr).length, 1, result.stderr);
  assert.match(warningsOf(result.stderr)[0]!, /cache main is unusable, .*gave up on the store after 1\.\d s \(--deadline 1\)/);
  assert.match(result.stderr, /restore: miss/);
  unchanged();
  assert.equal(readdirSync(join(top, '.nix-build-cache')).filter((name) => name.startsWith('staging')), []);
});

test('NBC_DEADLINE sets it too, with fallbacks: still one warning', async () => {
  const { result, unchanged } = await slowRun('restore', trickleDownloads, ['--fallback', 'other', '--fallback', 'third'], { NBC_DEADLINE: '0.5' });
  assert.is(result.code, 0, result.stderr);
  assert.equal(warningsOf(result.stderr).length, 1, result.stderr);
  assert.match(warningsOf(result.stderr)[0]!, /gave up on the store after 0\.\d s \(--deadline 0\.5\)/);
  unchanged();
});

test('without --deadline, the default gives a trickle up (a 1 MB/s average is its floor)', async () => {
  const { result, unchanged } = await slowRun('restore', trickleDownloads, []);
  assert.is(result.code, 0, result.stderr);
  assert.equal(warningsOf(result.stderr).length, 1, result.stderr);
  assert.match(warningsOf(result.stderr)[0]!, /gave up on the store after waiting 1\d\.\d s for it: 0\.\d MB moved, slower than the default deadline allows/);
  unchanged();
});

test('a trickling download with --strict: exit 1, the tree untouched', async () => {
  const { result, unchanged } = await slowRun('restore', trickleDownloads, ['--deadline', '1', '--strict']);
  assert.is(result.code, 1, result.stderr);
  assert.match(result.stderr, /gave up on the store after/);
  unchanged();
});

test('an upload read at a trickle is given up at --deadline; the archive stored before still restores', async () => {
  const { result, prefix } = await slowRun('save', trickleUploads, ['--deadline', '1']);
  assert.is(result.code, 0, result.stderr);
  assert.equal(warningsOf(result.stderr).length, 1, result.stderr);
  assert.match(warningsOf(result.stderr)[0]!, /save failed, the build goes on: gave up on the store after 1\.\d s \(--deadline 1\)/);
  const { top, root } = await fresh();
  const again = await runCli(['restore', ...ARGS], {
    cwd: root, env: { NIX_BUILD_TOP: top, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x', NBC_STORE: `s3://${s3.bucket}/${prefix}`, NBC_S3_ENDPOINT: s3.endpoint },
  });
  assert.match(again.stderr, /restore: hit main/, again.stderr);
  assert.is(readFileSync(join(root, 'obj', 'a.o')).length, 256 << 10);
});

test.run();
