// Builds for the save hardening suites: restore, make the artifacts, save, as the CLI runs in Nix.
import { chownSync, lstatSync, readdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, runCommand, writeTree, type CliResult } from './helpers.js';

export interface SaveBuild {
  top: string;
  root: string;
  restore: CliResult;
  save: CliResult;
}

export interface SaveBuildOptions {
  cacheDirs?: string[];
  sources?: Record<string, string | Buffer>;
  /** Makes the artifacts (the build), after restore. */
  fill?: (root: string) => void;
  saveArgs?: string[];
  env?: Record<string, string>;
  /** Runs both commands as this user (the tree is theirs), with group `gid`. */
  uid?: number;
  gid?: number;
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/** A build in a fresh nix-build-… dir below `work`: sources, restore, fill, save. */
export async function saveBuild(work: string, store: string, name: string, options: SaveBuildOptions = {}): Promise<SaveBuild> {
  const top = await mkdtemp(join(work, 'nix-build-'));
  const root = join(top, 'source');
  writeTree(root, options.sources ?? { 'main.c': 'int main(void) { return 0; }\n' });
  const as = options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid };
  if (options.uid !== undefined) chownTree(top, options.uid, options.gid ?? options.uid);
  const args = ['--store', store, '--cache-name', name, ...(options.cacheDirs ?? ['obj']).flatMap((dir) => ['--cache-dir', dir])];
  const env = { NIX_BUILD_TOP: top, HOME: '/homeless-shelter', ...options.env };
  const cli = (command: string, extra: string[] = []) => runCommand(process.execPath, [CLI, command, ...args, ...extra], { cwd: root, env, ...as });
  const restore = await cli('restore');
  options.fill?.(root);
  if (options.uid !== undefined) chownTree(top, options.uid, options.gid ?? options.uid);
  const save = await cli('save', options.saveArgs);
  return { top, root, restore, save };
}

/** The warning lines of a run's output. */
export function warnings(output: string): string[] {
  return output.split('\n').filter((line) => line.includes('warning:'));
}
