// Question: does a big cache (default 1 GiB) round-trip through the S3 store byte for byte, and
// what are the peak RSS of save and of restore? Usage: node dist/bench/big-cache.js [--mib N]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { formatManifest } from '../src/core/manifest.js';
import { hashTree } from '../src/index.js';
import { startS3 } from '../test/s3-server.js';

const run = promisify(execFile);
const MEASURED = fileURLToPath(new URL('./measured.js', import.meta.url));
const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' } } });
const totalBytes = Number(values.mib) * (1 << 20);

/** Semi-compressible content, like object files: random runs between repeated runs. */
function artifact(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let at = 0; at < size; at += 8192) randomBytes(Math.min(4096, size - at)).copy(data, at);
  return data;
}

async function measured(command: 'restore' | 'save', options: object): Promise<{ report: { outcome: string; seconds: number }; maxRssBytes: number }> {
  const { stdout } = await run(process.execPath, [MEASURED, command, JSON.stringify(options)], { maxBuffer: 1 << 26 });
  return JSON.parse(stdout) as never;
}

const s3 = await startS3('bench');
const work = await mkdtemp(join(tmpdir(), 'nbc-big-cache-'));
try {
  const source = join(work, 'build-1', 'source');
  await mkdir(join(source, 'obj'), { recursive: true });
  await writeFile(join(source, 'main.c'), 'int main(void) { return 0; }\n');
  const common = {
    store: `s3://${s3.bucket}/big`, cacheName: 'big', cacheDirs: ['obj'],
    s3: { endpoint: s3.endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
  };
  const first = await measured('restore', { ...common, root: source, stateDir: join(work, 'state-1') });
  // The "build": artifacts appear after restore, as they would.
  const fileSize = 4 << 20;
  for (let i = 0; i * fileSize < totalBytes; i++) await writeFile(join(source, 'obj', `part${i}.o`), artifact(Math.min(fileSize, totalBytes - i * fileSize)));
  const saved = await measured('save', { ...common, stateDir: join(work, 'state-1') });
  const target = join(work, 'build-2', 'source');
  await mkdir(target, { recursive: true });
  await writeFile(join(target, 'main.c'), 'int main(void) { return 0; }\n');
  const restored = await measured('restore', { ...common, root: target, stateDir: join(work, 'state-2') });
  const identical = formatManifest((await hashTree(join(source, 'obj'))).digests)
    .equals(formatManifest((await hashTree(join(target, 'obj'))).digests));
  const mib = (bytes: number) => Math.round(bytes / (1 << 20));
  console.log(JSON.stringify({
    cacheMiB: mib(totalBytes), identical, firstRestore: first.report.outcome, save: saved.report, restore: restored.report.outcome,
    saveSeconds: saved.report.seconds, restoreSeconds: restored.report.seconds,
    saveMaxRssMiB: mib(saved.maxRssBytes), restoreMaxRssMiB: mib(restored.maxRssBytes),
  }, null, 2));
  if (!identical || restored.report.outcome !== 'hit') process.exitCode = 1;
} finally {
  await s3.close();
  await rm(work, { recursive: true, force: true });
}
