import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { applyPlan, createdPaths } from './apply.js';
import { extractArchive, type ExtractedArchive } from './archive.js';
import { parseManifest } from './core/manifest.js';
import { defaultBlobCache } from './blobs/cache.js';
import { extractBlobs, readBlobManifest } from './blobs/restore.js';
import { forgetUnchanged, recordUnchanged, type RestoredBlob } from './blobs/unchanged.js';
import { cacheKey, whyMissing } from './core/key.js';
import { redact } from './core/redact.js';
import { DeadlineError, withDeadline } from './deadline.js';
import { bytePathFromText, textFromBytePath, type BytePath } from './core/paths.js';
import { changedSourceTime, planRestore, type RestorePlan } from './core/plan.js';
import { currentArtifacts } from './freshness.js';
import { ArchiveError, ConfigError, describeError } from './core/errors.js';
import { hashTreeWithPool, type TreeHash } from './hash.js';
import { resolveOptions, type ResolvedOptions, type RestoreOptions } from './options.js';
import { counted, PhaseReporter } from './progress.js';
import { withPool, type WorkerPool } from './pool.js';
import type { Attempt, ExplainLine, RestoreReport } from './report.js';
import { clearJournal, recoverInterruptedRestore, writeJournal } from './journal.js';
import { keysOfCache, markRestored } from './manage.js';
import { moveNinjaTimes, NotRelocatable, relocateStaging } from './staging.js';
import { defaultStateDir, prepareStateDir, writeRestored, writeState, type RestoredFile, type RestoreState } from './state.js';
import { openStore, type Store } from './stores/index.js';

/** Directories below `root` that a walk of it must not enter: the state dir, if it lies inside. */
export function skipInside(root: string, dir: string): Set<BytePath> {
  const inner = relative(root, dir);
  return inner === '' || inner.startsWith('..') || inner.startsWith('/') ? new Set() : new Set([bytePathFromText(inner)]);
}

function explainPlan(plan: RestorePlan, unhashable: readonly BytePath[], rewritten: readonly BytePath[]): ExplainLine[] {
  const line = (status: ExplainLine['status'], path: BytePath, reason?: string): ExplainLine =>
    (reason === undefined ? { status, path: textFromBytePath(path) } : { status, path: textFromBytePath(path), reason });
  const unreadable = new Set(unhashable);
  return [
    ...plan.diff.unchanged.map((p) => line('unchanged', p)),
    ...plan.diff.changed.map((p) => line('changed', p, unreadable.has(p) ? 'could not be hashed' : undefined)),
    ...plan.diff.added.map((p) => line('new', p)),
    ...plan.diff.removed.map((p) => line('removed', p)),
    ...plan.restore.filter((e) => e.kind !== 'dir').map((e) => line('restored', e.path)),
    ...plan.skipped.map((s) => line('skipped', s.path, s.reason)),
    ...rewritten.map((path) => line('rewritten', path, 'build root relocated')),
  ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

interface Context {
  config: ResolvedOptions;
  store: Store;
  pool: WorkerPool;
  root: string;
  stateDir: string;
  state: RestoreState;
  tree: TreeHash;
  report: RestoreReport;
}

/**
 * Tries one cache: unpack into staging, plan, move into place. Returns the fingerprint of the
 * restored artifacts and the restore mark under way (see markRestored), or undefined when there is
 * no such archive; throws when it is unusable.
 */
async function tryCache(ctx: Context, name: string, key: string): Promise<{ fingerprint: string; marking: Promise<void> } | undefined> {
  const { config, report } = ctx;
  const body = config.layout === 'blobs' ? await readBlobManifest(ctx.store, key, config.signal) : await ctx.store.get(key, config.signal);
  if (!body) return undefined;
  const staging = await mkdtemp(join(ctx.stateDir, 'staging-'));
  try {
    const unpacking = new PhaseReporter(config.onProgress, 'unpack');
    const into = {
      staging, cacheDirs: config.cacheDirs, limits: config.limits, signal: config.signal, pool: ctx.pool,
      treeSymlinks: new Set([...ctx.tree.symlinks].map(textFromBytePath)),
    };
    const archive = 'entries' in body
      ? await extractBlobs(body, { ...into, store: ctx.store, key, stateDir: ctx.stateDir, cacheDir: config.blobCache ?? defaultBlobCache(), onProgress: config.onProgress })
      : await extractArchive(counted(body, new PhaseReporter(config.onProgress, 'fetch', body.size === undefined ? {} : { totalBytes: body.size })), into);
    const files = archive.entries.filter((e) => e.kind !== 'dir');
    unpacking.end(files.length, files.reduce((sum, e) => sum + e.size, 0));
    const cached = parseManifest(archive.manifest);
    if (cached.problems.length > 0) throw new ArchiveError(`bad manifest, ${cached.problems[0]}`, '.cache-meta/MD5SUMS');
    const { meta } = archive;
    const rewritten = meta.root === ctx.root ? [] : await relocateStaging(staging, archive.entries, meta.root, ctx.root, new Set(meta.rooted));
    const plan = planRestore(ctx.tree, cached.manifest, archive.entries, changedSourceTime(Date.now()));
    await moveNinjaTimes(staging, plan.restore, plan.clock);
    await writeRestored(ctx.stateDir, restoredFiles(plan, archive.artifactDigests));
    const restoring = plan.restore.filter((e) => e.kind !== 'dir');
    const applying = new PhaseReporter(config.onProgress, 'apply', {
      totalFiles: restoring.length, totalBytes: restoring.reduce((sum, e) => sum + e.size, 0),
    });
    const applied = await applyPlan(plan, Buffer.from(staging), Buffer.from(ctx.root), ctx.tree.dirs, ctx.pool, config.signal,
      () => writeJournal(ctx.stateDir, ctx.root, createdPaths(plan, ctx.tree.dirs)));
    applying.end(applied.restored, applied.bytes);
    // Once the files are in place: prune --max-size evicts what restores have not used for longest.
    // A request to the store, under way while the records below are written.
    const marking = markRestored(ctx.store, key, config.signal);
    // As save will see them if the build changes nothing.
    const left = currentArtifacts(ctx.root, plan.restore.filter((e) => e.kind !== 'dir'));
    if (archive.blobs) await recordUnchanged(ctx.stateDir, left.stats, restoredBlobs(plan, archive.blobs, archive, new Set(rewritten)));
    [...archive.warnings, ...applied.warnings].forEach((w) => warn(ctx, w));
    if (plan.skipped.length > 0) {
      const [first] = plan.skipped;
      warn(ctx, `${plan.skipped.length} archive entries not restored, e.g. ${textFromBytePath(first!.path)}: ${first!.reason}`);
    }
    const { diff } = plan;
    Object.assign(report.sources, {
      unchanged: diff.unchanged.length, changed: diff.changed.length, added: diff.added.length, removed: diff.removed.length,
    });
    report.artifacts = { restored: applied.restored, skipped: plan.skipped.length, bytes: applied.bytes };
    report.hit = { name, key, fallback: name !== config.cacheName };
    if (config.explain) report.explain = explainPlan(plan, ctx.tree.unhashable, rewritten);
    return { fingerprint: left.fingerprint, marking };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Each restored file as its blob, for the next save (see blobs/unchanged.ts); rewritten ones are not their blob. */
function restoredBlobs(plan: RestorePlan, blobs: ReadonlyMap<BytePath, string>, archive: ExtractedArchive, rewritten: ReadonlySet<BytePath>): RestoredBlob[] {
  const rooted = new Set(archive.meta.rooted);
  const files: RestoredBlob[] = [];
  for (const { path, kind } of plan.restore) {
    const blob = blobs.get(path);
    const md5 = archive.artifactDigests.get(path);
    if (kind === 'file' && blob !== undefined && md5 !== undefined && !rewritten.has(path)) files.push({ path, blob, md5, rooted: rooted.has(path) });
  }
  return files;
}

/** Each restored file that has a saved digest, with the time it got: what settle compares with. */
function restoredFiles(plan: RestorePlan, digests: ReadonlyMap<BytePath, string>): RestoredFile[] {
  const files: RestoredFile[] = [];
  for (const { path, mtime } of plan.artifactTimes) {
    const digest = digests.get(path);
    if (digest !== undefined) files.push([path, digest, mtime]);
  }
  return files;
}

/** The credentials given, to keep out of every message (see core/redact.ts). */
function secretsOf(config: ResolvedOptions): (string | undefined)[] {
  const { credentials } = config.s3;
  return [credentials?.accessKeyId, credentials?.secretAccessKey, credentials?.sessionToken];
}

function warn(ctx: { report: RestoreReport; config: ResolvedOptions }, text: string): void {
  const message = redact(text, secretsOf(ctx.config));
  ctx.report.warnings.push(message);
  ctx.config.onWarning?.(message);
}

/**
 * A missing name, with why when archives of that name exist for other settings or another salt.
 * Only an explanation: a store that cannot list (a policy that allows reads only, say) leaves a
 * plain miss, never an error.
 */
async function missing(ctx: Context, name: string, key: string): Promise<Attempt> {
  let reason: string | undefined;
  try {
    reason = whyMissing(key, await keysOfCache(ctx.store, name, ctx.config.signal)) ?? await ctx.store.whyEmpty?.();
  } catch (error) {
    if (ctx.config.signal?.aborted) throw error;
    reason = redact(`the store could not be listed to say why (${describeError(error)})`, secretsOf(ctx.config));
  }
  return reason === undefined ? { name, key, result: 'missing' } : { name, key, result: 'missing', reason };
}

/** Staging dirs of restores that were killed: nobody else writes in a state dir. */
async function removeStaleStaging(stateDir: string): Promise<void> {
  for (const name of await readdir(stateDir)) {
    if (name.startsWith('staging-')) await rm(join(stateDir, name), { recursive: true, force: true });
  }
}

/** Tries the cache name, then each fallback; the first usable archive is restored. */
async function restoreFirstUsable(ctx: Context): Promise<void> {
  const { config, report } = ctx;
  for (const name of [config.cacheName, ...config.fallbacks]) {
    const key = cacheKey(name, config);
    try {
      const restored = await tryCache(ctx, name, key);
      if (restored === undefined) {
        report.attempts.push(await missing(ctx, name, key));
        continue;
      }
      report.attempts.push({ name, key, result: 'hit' });
      report.outcome = 'hit';
      report.result = name === config.cacheName ? 'hit' : 'fallback';
      report.matchedKey = key;
      await writeState(ctx.stateDir, { ...ctx.state, hit: { name, key, artifacts: restored.fingerprint } });
      // Last: killed before this, the next restore of this tree undoes this one (see journal.ts).
      await clearJournal(ctx.stateDir);
      await restored.marking;
      return;
    } catch (error) {
      // A failed apply removed what it had moved in; nothing is left to undo.
      await clearJournal(ctx.stateDir);
      if (error instanceof NotRelocatable) {
        report.attempts.push({ name, key, result: 'unrelocatable', reason: error.message });
        continue;
      }
      if (config.strict || config.signal?.aborted) throw error;
      const reason = redact(describeError(error), secretsOf(config));
      report.attempts.push({ name, key, result: 'unusable', reason });
      warn(ctx, `cache ${name} is unusable, ${error instanceof ArchiveError ? 'archive ' : ''}${key}: ${reason}`);
      // The time is up for every other name too: one warning says so.
      if (error instanceof DeadlineError) return;
    }
  }
}

/**
 * Restores the newest usable cache among `cacheName` and the fallbacks into the current source tree
 * and sets times so that the build redoes exactly what changed. A cache problem is a warning and a
 * miss (the build goes on from scratch); only invalid options throw, or anything with `strict`.
 */
export async function restore(options: RestoreOptions): Promise<RestoreReport> {
  const config = resolveOptions(options);
  const started = Date.now();
  const root = config.root ?? process.cwd();
  const report: RestoreReport = {
    command: 'restore', outcome: 'miss', result: 'miss', matchedKey: null, cacheName: config.cacheName, root, attempts: [],
    sources: { files: 0, bytes: 0, unchanged: 0, changed: 0, added: 0, removed: 0 },
    artifacts: { restored: 0, skipped: 0, bytes: 0 }, warnings: [], seconds: 0,
  };
  let store: Store | undefined;
  try {
    const stateDir = await prepareStateDir(config.stateDir ?? defaultStateDir(root));
    const recovered = await recoverInterruptedRestore(stateDir, root);
    if (recovered) warn({ report, config }, recovered);
    await removeStaleStaging(stateDir);
    await withPool(undefined, config.threads, async (pool) => {
      // The store opens while the pool hashes: loading the AWS SDK takes a tenth of a second.
      const opening = openStore(config.store, config.s3);
      let tree: TreeHash;
      const hashing = new PhaseReporter(config.onProgress, 'hash');
      try {
        tree = await hashTreeWithPool(Buffer.from(root), {
          pool, skip: skipInside(root, stateDir), signal: config.signal, onProgress: (files, bytes) => hashing.update(files, bytes),
        });
        hashing.end(tree.digests.size + tree.unhashable.length, tree.bytes);
      } finally {
        store = await opening;
      }
      tree.problems.forEach((problem) => warn({ report, config }, problem));
      report.sources.files = tree.digests.size + tree.unhashable.length;
      report.sources.bytes = tree.bytes;
      // Recorded before any archive is touched: save needs it even when restore finds nothing.
      const state: RestoreState = { root, cacheName: config.cacheName, hit: null, unhashable: tree.unhashable };
      await writeState(stateDir, state, tree.digests);
      await forgetUnchanged(stateDir);
      await withDeadline(store, config, (guarded) => restoreFirstUsable({ config, store: guarded, pool, root, stateDir, state, tree, report }));
    });
  } catch (error) {
    if (error instanceof ConfigError || config.strict) throw error;
    report.outcome = 'error';
    warn({ report, config }, `restore failed, building without the cache: ${describeError(error)}`);
  } finally {
    if (typeof config.store === 'string') store?.close();
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}
