import { mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { parseMakeOutput } from '../bench/c-project.js';
import { execFileAsync, runCli, writeTree } from './helpers.js';

export interface Build {
  root: string;
  top: string;
  compiled: string[];
  linked: boolean;
  restoreOutput: string;
  saveOutput: string;
  report: { outcome: string; hit?: { name: string; fallback: boolean }; attempts: { name: string; result: string }[] };
}

export interface BuildOptions {
  fallbacks?: string[];
  cacheDir?: string;
  /** Runs on the fresh source tree before restore, as patchPhase would. */
  beforeRestore?: (root: string) => void;
  /** Runs after make, before save. */
  beforeSave?: (root: string) => void;
  extraArgs?: string[];
  saveArgs?: string[];
  /** What save must say. Default: saved, or skipped because nothing changed. */
  saveSays?: RegExp;
}

/**
 * Builds as Nix would: a fresh nix-build-… directory below `work` each time, sources with mtime 1,
 * restore in preConfigure, make, save in preInstall. `env` carries the store settings.
 */
export async function nixLikeBuild(work: string, env: Record<string, string>, files: Record<string, string>, name: string,
  options: BuildOptions = {}): Promise<Build> {
  // In a Nix build the store directory must exist: the admin's one-time set-up.
  if (env.NBC_STORE && !/^[a-z0-9+.-]+:\/\//.test(env.NBC_STORE)) mkdirSync(env.NBC_STORE, { recursive: true });
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, files);
  options.beforeRestore?.(root);
  const buildEnv = { ...env, NIX_BUILD_TOP: top };
  const cacheArgs = ['--cache-name', name, '--cache-dir', options.cacheDir ?? 'obj'];
  const restored = await runCli(['restore', ...cacheArgs, ...(options.fallbacks ?? []).flatMap((f) => ['--fallback', f]),
    '--json', join(top, 'restore.json'), '--explain', ...(options.extraArgs ?? [])], { cwd: root, env: buildEnv });
  assert.is(restored.code, 0, restored.stderr);
  const make = await execFileAsync('make', [], { cwd: root });
  options.beforeSave?.(root);
  const saved = await runCli(['save', ...cacheArgs, ...(options.saveArgs ?? [])], { cwd: root, env: buildEnv });
  assert.is(saved.code, 0, saved.stderr);
  assert.match(saved.stderr, options.saveSays ?? /save: (saved|skipped .*nothing under the cache dirs changed)/, saved.stderr);
  const report = JSON.parse(readFileSync(join(top, 'restore.json'), 'utf8')) as Build['report'];
  return {
    root, top, ...parseMakeOutput(make.stdout), restoreOutput: restored.stdout + restored.stderr, saveOutput: saved.stderr, report,
  };
}
