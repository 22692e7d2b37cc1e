// Question: how long does a cache round trip take (save, wipe, restore into a fresh build dir),
// next to shell pipelines on the same data and the same server?
//   S3 (s3rver on loopback): ours vs the best shell pipeline (GNU tar | zstd -1 -T2 to a file, one
//     PUT with curl; one GET with curl | zstd -d | tar -x) and vs the seed's way (md5sum manifest,
//     tar | xz, `aws s3 cp` both ways).
//   Local store: ours vs tar | zstd -1 -T2 to a file and back, and ours with gzip (the codec choice).
// Usage: node dist/bench/roundtrip.js [--quick] [--json FILE]
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Store } from '../src/stores/s3.js';
import { ACCESS_KEY_ID, startS3, type TestS3 } from '../test/s3-server.js';
import { benchDir, benchMain, CLI, medians, run, timeShell, type Result } from './common.js';
import { ARTIFACTS, generateTree, SOURCES, type TreeSpec } from './workload.js';

// This process talks to the server too (emptying the bucket): the SDK's notice that its next
// versions need Node 22 would only clutter the report.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

let fresh = 0;
const SECRET = 'bench-secret';

/**
 * Our restore (a miss), the "build" (the cache dir appears), then timed: save, and restore elsewhere.
 * The cache dir is moved in and back, not copied: a copy would take the memory that the last run
 * just freed (which this VM hands out fast) and leave this run fresh pages (slow), but not the
 * shell pipelines, which read the tree where it is.
 */
export async function ours(work: string, cacheDir: string, store: string, env: NodeJS.ProcessEnv): Promise<number> {
  const top = join(work, `ours-${++fresh}`);
  const builds = [join(top, 'build-1', 'source'), join(top, 'build-2', 'source')];
  for (const root of builds) {
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'main.c'), 'int main(void) { return 0; }\n');
  }
  // The store of Nix builds exists beforehand (restore and save do not create one there).
  if (!store.includes('://')) await mkdir(store, { recursive: true });
  const args = ['--cache-name', `rt-${fresh}`, '--cache-dir', 'obj', '--store', store, '--quiet'];
  const options = (root: string) => ({ cwd: root, env: { ...env, NIX_BUILD_TOP: join(root, '..') } });
  await run(process.execPath, [CLI, 'restore', ...args], options(builds[0]!));
  const built = join(builds[0]!, 'obj');
  await rename(cacheDir, built);
  try {
    const started = process.hrtime.bigint();
    await run(process.execPath, [CLI, 'save', ...args], options(builds[0]!));
    await run(process.execPath, [CLI, 'restore', ...args], options(builds[1]!));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // A round trip that restored nothing measured nothing: fail rather than report it.
    await stat(join(builds[1]!, 'obj')).catch(() => { throw new Error(`the round trip through ${store} restored nothing`); });
    return seconds;
  } finally {
    await rename(built, cacheDir);
    await rm(top, { recursive: true, force: true });
  }
}

/** A shell pipeline: `save` run beside the cache dir, then `restore` in an empty dir; seconds for both. */
async function shell(work: string, cacheDir: string, save: string, restore: string, env: NodeJS.ProcessEnv): Promise<number> {
  const dir = join(work, `shell-${++fresh}`);
  await mkdir(join(dir, 'out'), { recursive: true });
  const command = `set -o pipefail; cd ${cacheDir}/.. && ${save.replaceAll('$N', String(fresh)).replaceAll('$DIR', dir)} `
    + `&& cd ${dir}/out && ${restore.replaceAll('$N', String(fresh)).replaceAll('$DIR', dir)}`;
  const seconds = await timeShell(command, work, env);
  await rm(dir, { recursive: true, force: true });
  return seconds;
}

function s3Pipelines(s3: TestS3) {
  const curl = `curl -sS -f --aws-sigv4 aws:amz:us-east-1:s3 --user ${ACCESS_KEY_ID}:${SECRET} -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD'`;
  const url = `${s3.endpoint}/${s3.bucket}`;
  const aws = `aws --endpoint-url ${s3.endpoint} s3 cp --quiet`;
  return {
    best: {
      save: `tar -cf - obj | zstd -1 -T2 -q > $DIR/archive && ${curl} -T $DIR/archive ${url}/shell-$N.tar.zst`,
      restore: `${curl} ${url}/shell-$N.tar.zst | zstd -dc -q | tar -xf -`,
    },
    seed: {
      save: `find obj -type f -print0 | xargs -0 md5sum > MD5SUMS && tar -cf - MD5SUMS obj | xz | ${aws} - s3://${s3.bucket}/seed-$N.tar.xz`,
      restore: `${aws} s3://${s3.bucket}/seed-$N.tar.xz - | xz -dc | tar -xf - && find . -type f -print0 | xargs -0 md5sum > /dev/null`,
    },
  };
}

interface Tree {
  name: string;
  spec: TreeSpec;
  /** Whether to run the seed's pipeline (xz takes about a second per 1.4 MB here). */
  seed: boolean;
  /** Whether to run the blob layout's round trip too (issue 17: into an empty store, with an empty local blob cache). */
  blobs?: true;
  /** Targets: ratio against the best shell pipeline, and against the seed's. */
  targets: { shell: number; seed?: number };
}

export async function roundTripBench(quick: boolean): Promise<Result[]> {
  const work = await mkdtemp(join(benchDir(), 'nbc-bench-roundtrip-'));
  const s3 = await startS3('bench', benchDir());
  const bucket = new S3Store(s3.bucket, '', { endpoint: s3.endpoint, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET } });
  /**
   * Runs `measure`, then empties the bucket: the server keeps its objects beside the trees (tmpfs),
   * so neither its disk nor what earlier runs left there is measured.
   */
  const clean = async <T>(measure: () => Promise<T>): Promise<T> => {
    try {
      return await measure();
    } finally {
      for (const object of await bucket.list()) await bucket.delete(object.key);
    }
  };
  const env = {
    ...process.env, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true', NBC_S3_ENDPOINT: s3.endpoint,
  };
  const trees: Tree[] = [
    { name: 'artifacts', spec: { ...ARTIFACTS, files: quick ? 200 : 2000 }, seed: false, blobs: true, targets: { shell: 1.0 } },
    // The seed's xz needs minutes per 100 MB: it runs on a smaller artifact tree.
    { name: 'artifacts', spec: { ...ARTIFACTS, files: quick ? 45 : 150, seed: 3 }, seed: true, targets: { shell: 1.0, seed: 10 } },
    { name: 'small files', spec: { ...SOURCES, files: quick ? 10_000 : 50_000 }, seed: false, targets: { shell: 0.5 } },
  ];
  try {
    const results: Result[] = [];
    const runs = quick ? 1 : 3;
    for (const tree of trees) {
      const cacheDir = join(work, `tree-${++fresh}`, 'obj');
      const mb = generateTree(cacheDir, tree.spec) / 1e6;
      const label = `${tree.name} (${tree.spec.files} files, ${mb.toFixed(0)} MB)`;
      const pipelines = s3Pipelines(s3);
      const store = join(work, 'store');
      // The blob layout starts from nothing each time: a new store (the bucket is emptied) and local blob cache.
      const blobsEnv = () => ({ ...env, NBC_LAYOUT: 'blobs', XDG_CACHE_HOME: join(work, `xdg-${++fresh}`) });
      const blobMeasures: Record<string, () => Promise<number>> = tree.blobs ? {
        blobsS3: () => clean(() => ours(work, cacheDir, `s3://${s3.bucket}/ours`, blobsEnv())),
        blobsLocal: () => ours(work, cacheDir, join(work, `store-${++fresh}`), blobsEnv()),
      } : {};
      const { best, oursS3, local, oursLocal, oursGzip, blobsS3, blobsLocal } = await medians<string>(runs, {
        ...blobMeasures,
        best: () => clean(() => shell(work, cacheDir, pipelines.best.save, pipelines.best.restore, env)),
        oursS3: () => clean(() => ours(work, cacheDir, `s3://${s3.bucket}/ours`, env)),
        local: () => shell(work, cacheDir, 'tar -cf - obj | zstd -1 -T2 -q > $DIR/archive', 'zstd -dc -q $DIR/archive | tar -xf -', env),
        oursLocal: () => ours(work, cacheDir, store, env),
        // The codec choice: the same round trip with gzip (level 1, node:zlib).
        oursGzip: () => ours(work, cacheDir, store, { ...env, NBC_COMPRESSION: 'gzip' }),
      });
      results.push(
        { bench: 'roundtrip', figure: `${label}, S3: ours`, value: oursS3, unit: 's', baseline: 'tar | zstd -1 -T2 + curl PUT/GET',
          baselineValue: best, ratio: best / oursS3, threshold: tree.targets.shell },
        { bench: 'roundtrip', figure: `${label}, local store: ours`, value: oursLocal, unit: 's', baseline: 'tar | zstd -1 -T2 to a file',
          baselineValue: local, ratio: local / oursLocal },
        { bench: 'roundtrip', figure: `${label}, local store: ours (zstd, the default)`, value: oursLocal, unit: 's', baseline: 'ours with --compression gzip',
          baselineValue: oursGzip, ratio: oursGzip / oursLocal },
      );
      if (tree.blobs) {
        results.push(
          { bench: 'roundtrip', figure: `${label}, S3: ours, blob layout`, value: blobsS3!, unit: 's', baseline: 'tar | zstd -1 -T2 + curl PUT/GET',
            baselineValue: best!, ratio: best! / blobsS3!, threshold: 1 },
          { bench: 'roundtrip', figure: `${label}, local store: ours, blob layout`, value: blobsLocal!, unit: 's', baseline: 'tar | zstd -1 -T2 to a file',
            baselineValue: local!, ratio: local! / blobsLocal!, threshold: 1 },
        );
      }
      if (tree.seed) {
        const seed = await clean(() => shell(work, cacheDir, pipelines.seed.save, pipelines.seed.restore, env));
        results.push({ bench: 'roundtrip', figure: `${label}, S3: ours`, value: oursS3, unit: 's', baseline: "the seed's md5sum + tar | xz + aws s3 cp",
          baselineValue: seed, ratio: seed / oursS3, ...(tree.targets.seed ? { threshold: tree.targets.seed } : {}) });
      }
      await rm(join(cacheDir, '..'), { recursive: true, force: true });
    }
    return results;
  } finally {
    bucket.close();
    await s3.close();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchMain(roundTripBench);
