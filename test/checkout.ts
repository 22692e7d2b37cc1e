import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './helpers.js';

/** The repository's working tree (this file is dist/test/checkout.js). */
export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The files a clone has (git-tracked; a flake in a git checkout sees only these), as they are now. */
export async function trackedFiles(): Promise<string[]> {
  const result = await runCommand('git', ['-C', REPO, 'ls-files', '--cached', '-z']);
  if (result.code !== 0) throw new Error(`git ls-files: ${result.stderr}`);
  return result.stdout.split('\0').filter((path) => path !== '');
}

/** Copies the tracked files to `dest`: a fresh clone of the working tree, without node_modules or dist. */
export async function copyCheckout(dest: string): Promise<void> {
  for (const path of await trackedFiles()) {
    mkdirSync(dirname(join(dest, path)), { recursive: true });
    copyFileSync(join(REPO, path), join(dest, path));
  }
}
