import { lstat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ARTIFACTS_FILE, MANIFEST_FILE, META_FILE, packArchive } from './archive.js';
import { formatManifest } from './core/manifest.js';
import type { ArchiveMeta } from './core/meta.js';
import { artifactFingerprint, type ArtifactState } from './core/plan.js';
import { ARCHIVE_FORMAT, objectKey } from './core/key.js';
import { bytePathFromText, isTextPath, textFromBytePath, type BytePath } from './core/paths.js';
import { ConfigError, describeError } from './errors.js';
import { resolveOptions, type SaveOptions } from './options.js';
import { counted, PhaseReporter } from './progress.js';
import type { SaveReport } from './report.js';
import { skipInside } from './restore.js';
import { findState, readState } from './state.js';
import { withPool } from './pool.js';
import { openStore, type Store } from './stores/index.js';
import { VERSION } from './version.js';
import { absolutePath, walkTree } from './walk.js';

interface Artifacts {
  entries: BytePath[];
  warnings: string[];
}

/** Everything below the cache dirs that was not a source at restore time, sorted. */
async function listArtifacts(root: string, cacheDirs: readonly string[], sources: ReadonlySet<BytePath>,
  skip: ReadonlySet<BytePath>, signal?: AbortSignal): Promise<Artifacts> {
  const rootBytes = Buffer.from(root);
  const result: Artifacts = { entries: [], warnings: [] };
  for (const dir of cacheDirs.map(bytePathFromText)) {
    if (dir !== '.') {
      const stat = await lstat(absolutePath(rootBytes, dir)).catch(() => undefined);
      if (!stat?.isDirectory()) continue;
      if (!sources.has(dir)) result.entries.push(dir);
    }
    for await (const entries of walkTree(rootBytes, { start: dir, skip, signal, onProblem: (p) => result.warnings.push(p) })) {
      for (const { path, kind } of entries) {
        if (sources.has(path)) continue;
        if (kind === 'other') result.warnings.push(`${textFromBytePath(path)}: not a file, directory or symlink; not saved`);
        else if (!isTextPath(path)) result.warnings.push(`${textFromBytePath(path)}: name is not UTF-8; not saved`);
        else result.entries.push(path);
      }
    }
  }
  // Sorted, so archives are deterministic (and a directory comes before its contents).
  result.entries.sort();
  return result;
}

const STAT_BATCH = 256;

/** Fingerprint of the artifacts now, comparable with the one restore recorded. */
async function currentFingerprint(root: string, entries: readonly BytePath[]): Promise<string> {
  const rootBytes = Buffer.from(root);
  const states: ArtifactState[] = [];
  for (let i = 0; i < entries.length; i += STAT_BATCH) {
    const stats = await Promise.all(entries.slice(i, i + STAT_BATCH).map(async (path) => ({ path, stat: await lstat(absolutePath(rootBytes, path)) })));
    for (const { path, stat } of stats) {
      if (!stat.isDirectory()) states.push({ path, size: stat.isFile() ? stat.size : 0, mtimeMs: stat.mtimeMs });
    }
  }
  return artifactFingerprint(states);
}

/**
 * Archives the cache dirs (minus every file that was a source when restore ran) with the
 * restore-time manifest, streaming pack → compress → store. Skips with a warning when restore did
 * not run in this build; never throws for a cache problem unless `strict`.
 */
export async function save(options: SaveOptions): Promise<SaveReport> {
  const config = resolveOptions(options);
  const started = Date.now();
  const key = objectKey(config.cacheName, config);
  const report: SaveReport = {
    command: 'save', outcome: 'skipped', cacheName: config.cacheName, key, buildFailed: options.buildFailed === true,
    files: 0, dirs: 0, bytes: 0, archiveBytes: 0, warnings: [], seconds: 0,
  };
  const warn = (message: string) => {
    report.warnings.push(message);
    config.onWarning?.(message);
  };
  let store: Store | undefined;
  try {
    const loaded = config.stateDir ? await readState(config.stateDir) : await findState(config.root ?? process.cwd());
    if (!loaded) {
      report.reason = 'restore did not run in this build (no configure phase?), so nothing tells sources from artifacts';
      warn(`not saving: ${report.reason}`);
    } else {
      // The pool comes first: its thread starts up while this one lists the artifacts.
      await withPool(undefined, 1, async (pool) => {
        const { root } = loaded.state;
        const sources = new Set([...loaded.manifest.keys(), ...loaded.state.unhashable]);
        const artifacts = await listArtifacts(root, config.cacheDirs, sources, skipInside(root, loaded.dir), config.signal);
        artifacts.warnings.forEach(warn);
        const { hit } = loaded.state;
        if (hit?.key === key && hit.artifacts === await currentFingerprint(root, artifacts.entries)) {
          report.reason = `nothing under the cache dirs changed since ${hit.name} was restored; not uploading`;
          return;
        }
        const created = new Date(started);
        const opened = store = await openStore(config.store, config.s3);
        const packing = new PhaseReporter(config.onProgress, 'pack');
        const body = packArchive({
          root, entries: artifacts.entries, compression: config.compression, created: Math.floor(started / 1000), signal: config.signal, pool,
          metaFiles: (counts, digests, rooted) => {
            Object.assign(report, counts);
            packing.end(counts.files, counts.bytes);
            const meta: ArchiveMeta = {
              format: ARCHIVE_FORMAT, toolVersion: VERSION, cacheDirs: [...config.cacheDirs], root, rooted: [...rooted], created: created.toISOString(),
              ...counts, sources: loaded.manifest.size, ...(options.buildFailed ? { buildFailed: true } : {}),
            };
            return new Map([
              [MANIFEST_FILE, loaded.manifestText], [ARTIFACTS_FILE, formatManifest(digests)],
              [META_FILE, Buffer.from(`${JSON.stringify(meta, null, 2)}\n`)],
            ]);
          },
        });
        const uploading = new PhaseReporter(config.onProgress, 'upload');
        report.archiveBytes = (await opened.put(key, Readable.from(counted(body, uploading)), config.signal)).bytes;
        report.outcome = 'saved';
      });
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
