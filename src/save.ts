import { availableParallelism } from 'node:os';
import { realpath } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ARTIFACTS_FILE, MANIFEST_FILE, META_FILE, packArchive, type PackInput } from './archive.js';
import { listArtifacts, printable, someOf, type Artifacts } from './artifacts.js';
import { formatManifest } from './core/manifest.js';
import type { ArchiveMeta } from './core/meta.js';
import { defaultBlobCache } from './blobs/cache.js';
import { knownBlobs, saveBlobs } from './blobs/save.js';
import { readUnchanged } from './blobs/unchanged.js';
import { ARCHIVE_FORMAT, cacheKey } from './core/key.js';
import { ConfigError, describeError, NbcError } from './core/errors.js';
import { currentArtifacts, otherTree, provenManifest } from './freshness.js';
import { resolveOptions, type SaveOptions } from './options.js';
import { counted, PhaseReporter } from './progress.js';
import type { SaveReport } from './report.js';
import { skipInside } from './restore.js';
import { findState, readState } from './state.js';
import { withPool } from './pool.js';
import { withDeadline } from './deadline.js';
import { openStore, type Store } from './stores/index.js';
import { VERSION } from './version.js';

/**
 * Why an archive of these artifacts would be worse than none, or undefined when it may be saved:
 * a cache dir that cannot be saved (unless `allowPartial`), or nothing to save at all.
 */
function whyNotSaved(artifacts: Artifacts, cacheDirs: readonly string[], allowPartial: boolean): { reason: string; problem: boolean } | undefined {
  const refused = artifacts.refused.map(({ dir, reason }) => `${dir} ${reason}`);
  if (refused.length === cacheDirs.length) return { reason: `no cache dir can be saved: ${someOf(refused)}`, problem: true };
  if (refused.length > 0 && !allowPartial) {
    return { reason: `an archive without ${someOf(refused)} would replace a whole one (--allow-partial saves the other cache dirs)`, problem: true };
  }
  if (!artifacts.entries.some((entry) => entry.kind !== 'dir')) {
    return { reason: 'the cache dirs hold no artifacts, and an empty archive would replace the cache', problem: false };
  }
  return undefined;
}

/**
 * Archives the cache dirs (minus every file that was a source when restore ran) with the
 * restore-time manifest, streaming pack → compress → store. Skips with a warning when restore did
 * not run in this tree, when a cache dir cannot be saved (missing, not a directory, reached through
 * a symlink; see `allowPartial`) or when there is nothing to save: an archive never replaces the
 * cache with less than it should hold. Never throws for a cache problem unless `strict`.
 */
export async function save(options: SaveOptions): Promise<SaveReport> {
  const config = resolveOptions(options);
  const started = Date.now();
  const key = cacheKey(config.cacheName, config);
  const report: SaveReport = {
    command: 'save', outcome: 'skipped', cacheName: config.cacheName, key, buildFailed: options.buildFailed === true,
    files: 0, dirs: 0, bytes: 0, archiveBytes: 0, warnings: [], seconds: 0,
  };
  const warn = (message: string) => {
    report.warnings.push(message);
    config.onWarning?.(message);
  };
  let store: Store | undefined;
  /** Not saving: the reason goes in the report and one warning; with `strict` it fails the save. */
  const skip = (reason: string, problem = true) => {
    if (problem && config.strict) throw new NbcError('NBC_SAVE', `not saving: ${reason}`);
    report.reason = reason;
    warn(`not saving: ${reason}`);
  };
  try {
    const loaded = config.stateDir ? await readState(config.stateDir) : await findState(config.root ?? process.cwd());
    const elsewhere = loaded && await otherTree(loaded);
    if (!loaded) skip('restore did not run in this build (no configure phase?), so nothing tells sources from artifacts', false);
    else if (elsewhere) skip(elsewhere);
    else {
      // The pool comes first: its thread starts up while this one lists the artifacts. The blob
      // layout's starts with its first task: a save after a small edit packs on this thread.
      await withPool(undefined, 1, async (pool) => {
        const { root } = loaded.state;
        const sources = new Set([...loaded.manifest.keys(), ...loaded.state.unhashable]);
        const realRoot = await realpath(root, 'buffer');
        // Only the state in the temp dir outlives a build; a state dir given (as in Nix) is this build's.
        const proven = config.stateDir ? { manifestText: loaded.manifestText, changed: [] } : await provenManifest(loaded, pool, config.signal);
        const artifacts = await listArtifacts({
          root: Buffer.from(root), realRoot, cacheDirs: config.cacheDirs, sources, skip: skipInside(root, loaded.dir), signal: config.signal,
        });
        artifacts.warnings.forEach(warn);
        if (proven.changed.length > 0) {
          warn(`${proven.changed.length} sources changed since restore ran (${someOf(proven.changed.map(printable))}): `
            + 'saved as changed, so the next restore has what depends on them rebuilt');
        }
        const why = whyNotSaved(artifacts, config.cacheDirs, options.allowPartial === true);
        if (why !== undefined) {
          skip(why.reason, why.problem);
          return;
        }
        if (artifacts.refused.length > 0) {
          warn(`saving without ${someOf(artifacts.refused.map(({ dir, reason }) => `${dir} (${reason})`))}, as allow-partial asks`);
        }
        const { hit } = loaded.state;
        const now = hit || config.layout === 'blobs' ? currentArtifacts(root, artifacts.entries) : undefined;
        if (hit?.key === key && proven.changed.length === 0 && hit.artifacts === now?.fingerprint) {
          report.reason = `nothing under the cache dirs changed since ${hit.name} was restored; not uploading`;
          return;
        }
        const created = new Date(started);
        const opened = store = await openStore(config.store, config.s3);
        const packing = new PhaseReporter(config.onProgress, 'pack');
        const pack: PackInput = {
          root, realRoot, entries: artifacts.entries, created: Math.floor(started / 1000), signal: config.signal, pool,
          onSkipped: (skipped) => warn(`not saved: ${skipped.length} entries that could not be read or changed while saving: `
            + `${someOf(skipped.map(([path, reason]) => `${printable(path)} (${reason})`))}`),
          metaFiles: (counts, digests, rooted) => {
            // Thrown here, the archive is never completed: the store keeps what it had.
            if (counts.files === 0) throw new NbcError('NBC_SAVE', 'every artifact was left out, and an empty archive would replace the cache');
            Object.assign(report, counts);
            packing.end(counts.files, counts.bytes);
            const meta: ArchiveMeta = {
              format: ARCHIVE_FORMAT, toolVersion: VERSION, cacheDirs: [...config.cacheDirs], root, rooted: [...rooted], created: created.toISOString(),
              ...counts, sources: loaded.manifest.size - proven.changed.length, ...(options.buildFailed ? { buildFailed: true } : {}),
            };
            return new Map([
              [MANIFEST_FILE, proven.manifestText], [ARTIFACTS_FILE, formatManifest(digests)],
              [META_FILE, Buffer.from(`${JSON.stringify(meta, null, 2)}\n`)],
            ]);
          },
        };
        const uploading = new PhaseReporter(config.onProgress, 'upload');
        const blobCache = config.blobCache ?? defaultBlobCache();
        report.archiveBytes = (await withDeadline(opened, config, async (guarded) => {
          if (config.layout !== 'blobs') {
            return guarded.put(key, Readable.from(counted(packArchive({ ...pack, compression: config.compression }), uploading)), config.signal);
          }
          const saved = await saveBlobs({
            store: guarded, key, pack, cacheDir: blobCache, threads: config.threads ?? availableParallelism(), signal: config.signal,
            through: (chunks) => counted(chunks, uploading),
            known: await knownBlobs(guarded, loaded.dir, blobCache, config.signal), unchanged: await readUnchanged(loaded.dir), stats: now!.stats,
          });
          report.blobs = { new: saved.blobs, unread: saved.unread };
          return saved;
        })).bytes;
        report.outcome = 'saved';
      }, { lazy: config.layout === 'blobs' });
    }
  } catch (error) {
    if (error instanceof ConfigError || config.strict) throw error;
    report.outcome = 'error';
    report.reason = describeError(error);
    warn(`save failed, the build goes on: ${report.reason}`);
  } finally {
    if (typeof config.store === 'string') store?.close();
    report.seconds = (Date.now() - started) / 1000;
  }
  return report;
}
