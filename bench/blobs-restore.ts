// Question: what does a restore of the blob layout (#17) cost, next to the archive's shell pipeline?
//   (a) S3: restore with the previous build's blobs in the local cache vs with an empty one (target
//       ≥ 3×; a directory store keeps no local copies, its packs are on the machine already),
//   (b) restore with an empty local cache vs `zstd -dc archive | tar -x` (directory store) or
//       `curl GET | zstd -dc | tar -x` (S3: s3rver on loopback, and behind a link of 1 Gbit/s each
//       way, bench/link.ts) of the same tree (target ≥ 1.0×),
// and the peak memory of a restore. (Requests per restore: bench/store-cost.ts.)
// Each restore is the CLI (`restore --layout blobs`), as a build runs it, in a fresh build dir.
// Usage: node dist/bench/blobs-restore.js [--quick] [--json FILE]
import { readFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACCESS_KEY_ID, startS3 } from '../test/s3-server.js';
import { benchDir, benchMain, CLI, medians, run, timeShell, type Result } from './common.js';
import { startLink, type Link } from './link.js';
import { generateTree, type TreeSpec } from './workload.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ARTIFACTS: TreeSpec = { files: 1_500, minBytes: 16 << 10, maxBytes: 1 << 20, seed: 3 };
const SECRET = 'bench-secret';
/** A network as CI runners and build machines commonly have to their S3: 1 Gbit/s each way. */
const GIGABIT = 125e6;
let fresh = 0;

interface Place {
  name: string;
  /** --store of the CLI. */
  store: string;
  env: NodeJS.ProcessEnv;
  /** The shell pipeline that restores the archive `$ARCHIVE` (name in the store, path on disk) into the current dir. */
  shell: string;
  /** Puts the archive file where `shell` reads it. */
  putArchive: (file: string, name: string) => Promise<string>;
}

const cliArgs = (place: Place, name: string) => ['--layout', 'blobs', '--cache-name', name, '--cache-dir', 'obj', '--store', place.store, '--quiet'];

/** A CLI restore into a fresh build dir with the blob cache below `xdg`: seconds and peak memory (KB). */
async function cliRestore(work: string, place: Place, name: string, xdg: string): Promise<{ seconds: number; maxRssKb: number }> {
  const top = join(work, `restore-${++fresh}`);
  const root = join(top, 'source');
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'main.c'), 'int main;\n');
  const rss = join(top, 'rss');
  const started = process.hrtime.bigint();
  await run('/usr/bin/time', ['-f', '%M', '-o', rss, process.execPath, CLI, 'restore', ...cliArgs(place, name)],
    { cwd: root, env: { ...place.env, NIX_BUILD_TOP: top, XDG_CACHE_HOME: xdg } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const maxRssKb = Number((await readFile(rss, 'utf8')).trim().split('\n').pop());
  // A restore that restored nothing measured nothing.
  await readFile(join(root, 'obj', 'd0', 'e0', 'f0', 'file0.dat')).catch(() => { throw new Error(`restore of ${name} from ${place.store} restored nothing`); });
  await rm(top, { recursive: true, force: true });
  return { seconds, maxRssKb };
}

/** Saves the tree at `tree` (its dir `obj`) as `name` in the blob layout, keeping its blobs below `xdg`; makes the archive too. */
async function saveTree(work: string, place: Place, name: string, tree: string, xdg: string): Promise<string> {
  const top = join(work, `save-${++fresh}`);
  const root = join(top, 'source');
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'main.c'), 'int main;\n');
  const options = { cwd: root, env: { ...place.env, NIX_BUILD_TOP: top, XDG_CACHE_HOME: xdg } };
  await run(process.execPath, [CLI, 'restore', ...cliArgs(place, name)], options);
  await rename(join(tree, 'obj'), join(root, 'obj'));
  try {
    await run(process.execPath, [CLI, 'save', ...cliArgs(place, name)], options);
  } finally {
    await rename(join(root, 'obj'), join(tree, 'obj'));
    await rm(top, { recursive: true, force: true });
  }
  const archive = join(tree, 'archive.tar.zst');
  await timeShell(`tar -cf - obj | zstd -1 -T2 -q > ${archive}`, tree);
  return place.putArchive(archive, `${name}.tar.zst`);
}

async function restoreFigures(work: string, place: Place, spec: TreeSpec, runs: number): Promise<Result[]> {
  const name = `r${++fresh}`;
  const tree = join(work, `tree-${fresh}`);
  const mb = (generateTree(join(tree, 'obj'), spec) / 1e6).toFixed(0);
  const warm = join(work, `xdg-${name}`);
  const archive = await saveTree(work, place, name, tree, warm);
  const memory: number[] = [];
  const measures: Record<string, () => Promise<number>> = {
    empty: async () => {
      const xdg = await mkdtemp(join(work, 'xdg-empty-'));
      const { seconds, maxRssKb } = await cliRestore(work, place, name, xdg);
      memory.push(maxRssKb);
      await rm(xdg, { recursive: true, force: true });
      return seconds;
    },
    shell: async () => {
      const dir = join(work, `shell-${++fresh}`);
      await mkdir(dir);
      const seconds = await timeShell(place.shell.replaceAll('$ARCHIVE', archive), dir, place.env);
      await rm(dir, { recursive: true, force: true });
      return seconds;
    },
  };
  if (place.name.startsWith('S3')) measures.local = async () => (await cliRestore(work, place, name, warm)).seconds;
  const times = await medians(runs, measures);
  await rm(tree, { recursive: true, force: true });
  const label = `${place.name} (${spec.files} files, ${mb} MB)`;
  return [
    ...(times.local === undefined ? [] : [{ bench: 'blobs-restore', figure: `(a) ${label}: restore, blobs local`, value: times.local, unit: 's',
      baseline: 'empty local cache', baselineValue: times.empty!, ratio: times.empty! / times.local, threshold: 3 }]),
    { bench: 'blobs-restore', figure: `(b) ${label}: restore, empty local cache`, value: times.empty!, unit: 's',
      baseline: place.name.startsWith('S3') ? 'curl | zstd -dc | tar -x' : 'zstd -dc | tar -x', baselineValue: times.shell!, ratio: times.shell! / times.empty!, threshold: 1 },
    { bench: 'blobs-restore', figure: `${label}: restore, empty local cache, peak memory`, value: Math.max(...memory) / 1024, unit: 'MiB' },
  ];
}

export async function blobsRestoreBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-blobs-restore-'));
  const s3 = await startS3('bench', benchDir());
  const links: Link[] = [];
  try {
    const directory = join(work, 'store');
    await mkdir(directory);
    const curl = `curl -sS -f --aws-sigv4 aws:amz:us-east-1:s3 --user ${ACCESS_KEY_ID}:${SECRET} -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD'`;
    const env = {
      ...process.env, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true', NBC_S3_ENDPOINT: s3.endpoint,
    };
    /** S3 at `endpoint`: s3rver itself, or behind a link (each place its own prefix). */
    const s3Place = (name: string, endpoint: string, prefix: string): Place => {
      const url = `${endpoint}/${s3.bucket}/${prefix}-shell`;
      const placeEnv = { ...env, NBC_S3_ENDPOINT: endpoint };
      return {
        name, store: `s3://${s3.bucket}/${prefix}`, env: placeEnv, shell: `${curl} ${url}/$ARCHIVE | zstd -dc -q | tar -xf -`,
        putArchive: async (file, key) => {
          await timeShell(`${curl} -T ${file} ${url}/${key}`, work, placeEnv);
          return key;
        },
      };
    };
    links.push(await startLink(s3.port, GIGABIT));
    const places: Place[] = [
      { name: 'directory store', store: directory, env, shell: 'zstd -dc -q $ARCHIVE | tar -xf -', putArchive: async (file) => file },
      s3Place('S3', s3.endpoint, 'bench'),
      s3Place('S3 behind 1 Gbit/s', links[0]!.endpoint, 'link'),
    ];
    const spec = quick ? { ...ARTIFACTS, files: 300 } : ARTIFACTS;
    const results: Result[] = [];
    for (const place of places) results.push(...await restoreFigures(work, place, spec, quick ? 1 : 3));
    return results;
  } finally {
    for (const link of links) await link.close();
    await s3.close();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(blobsRestoreBench);
