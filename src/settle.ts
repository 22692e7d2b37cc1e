// Settle, run after configure: configure steps (autoconf's, CMake's) rewrite files that restore put
// in place, often with the same content but a fresh time, which makes everything that depends on
// them look stale. Each such file whose content is still what was saved gets its restored time back.
import { createHash } from 'node:crypto';
import { lstat, lutimes, readFile } from 'node:fs/promises';
import { isWithin, textFromBytePath } from './core/paths.js';
import { describeError } from './core/errors.js';
import type { SettleReport } from './report.js';
import { findState, readRestored, readState } from './state.js';
import { absolutePath } from './core/list-directory.js';

export interface SettleOptions {
  /** The source root restore ran in. Default: the current directory (or a parent of it). */
  root?: string;
  /** The state dir restore used. Default: found from the root, as save finds it. */
  stateDir?: string;
  /** Settle only files below these dirs. Default: every file restore put in place. */
  cacheDirs?: readonly string[];
  /** Throw on a problem instead of warning. Default false. */
  strict?: boolean;
  onWarning?: (message: string) => void;
}

/** Gives restored files that were rewritten with identical content their restored times back. */
export async function settle(options: SettleOptions): Promise<SettleReport> {
  const started = Date.now();
  const report: SettleReport = { command: 'settle', outcome: 'skipped', restored: 0, rewritten: 0, settled: 0, warnings: [], seconds: 0 };
  try {
    const loaded = options.stateDir ? await readState(options.stateDir) : await findState(options.root ?? process.cwd());
    if (!loaded) report.reason = 'restore did not run in this build';
    else await settleFiles(loaded.state.root, loaded.dir, options.cacheDirs, report);
  } catch (error) {
    if (options.strict) throw error;
    report.outcome = 'error';
    report.reason = describeError(error);
    report.warnings.push(`settle failed, the build goes on: ${report.reason}`);
    options.onWarning?.(report.warnings[0]!);
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

async function settleFiles(root: string, stateDir: string, cacheDirs: readonly string[] | undefined, report: SettleReport): Promise<void> {
  const rootBytes = Buffer.from(root);
  const files = (await readRestored(stateDir)).filter(([path]) => !cacheDirs || cacheDirs.some((dir) => isWithin(path, dir)));
  report.restored = files.length;
  for (const [path, digest, mtime] of files) {
    const file = absolutePath(rootBytes, path);
    const stat = await lstat(file).catch(() => undefined);
    if (!stat?.isFile() || Math.round(stat.mtimeMs) === Math.round(mtime * 1000)) continue;
    report.rewritten++;
    const content = await readFile(file).catch(() => undefined);
    if (content === undefined || createHash('md5').update(content).digest('hex') !== digest) continue;
    try {
      await lutimes(file, mtime, mtime);
      report.settled++;
    } catch (error) {
      report.warnings.push(`cannot set the time of ${textFromBytePath(path)}: ${describeError(error)}`);
    }
  }
  report.outcome = 'settled';
}
