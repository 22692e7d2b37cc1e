import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { formatManifest, parseManifest, type Manifest } from './core/manifest.js';
import type { BytePath } from './core/paths.js';
import { NbcError } from './core/errors.js';

/** What restore leaves for save, in the state dir (never inside the source tree or $out). */
export interface RestoreState {
  /** Absolute path of the source root at restore time. */
  root: string;
  cacheName: string;
  /** The cache that was restored, if any, and the fingerprint of the artifacts it left. */
  hit: { name: string; key: string; artifacts: string } | null;
  /** Files that existed at restore time but could not be hashed: sources all the same. */
  unhashable: BytePath[];
  /** The root directory's "device:inode" at restore time: another tree at the same path has others. */
  tree?: string;
}

const STATE_FILE = 'state.json';
const MANIFEST_FILE = 'MD5SUMS';

/** The state dir used when none is given: one per source root, in the temp dir. */
export function defaultStateDir(root: string): string {
  const id = createHash('sha256').update(root).digest('hex').slice(0, 16);
  return join(tmpdir(), `nix-build-cache-${process.getuid?.() ?? 0}-${id}`);
}

/** Creates the state dir (private to this user) and returns it; refuses one that is not ours. */
export async function prepareStateDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await lstat(dir);
  if (!stat.isDirectory() || (process.getuid && stat.uid !== process.getuid())) {
    throw new NbcError('NBC_STATE', `state dir ${dir} is not a directory owned by this user`);
  }
  return dir;
}

async function writeAtomically(path: string, data: Buffer | string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, data, { mode: 0o600 });
  await rename(temporary, path);
}

export async function writeState(dir: string, state: RestoreState, manifest?: Manifest): Promise<void> {
  if (manifest) {
    await writeAtomically(join(dir, MANIFEST_FILE), formatManifest(manifest));
    await rm(join(dir, RESTORED_FILE), { force: true });
  }
  await writeAtomically(join(dir, STATE_FILE), JSON.stringify({ ...state, tree: await treeIdentity(state.root) }));
}

/** The "device:inode" of a tree's root directory; undefined when it cannot be read. */
export async function treeIdentity(root: string): Promise<string | undefined> {
  const stat = await lstat(root).catch(() => undefined);
  return stat && `${stat.dev}:${stat.ino}`;
}

export interface LoadedState {
  dir: string;
  state: RestoreState;
  /** The restore-time manifest, as md5sum text and parsed. */
  manifestText: Buffer;
  manifest: Manifest;
  /** When restore last wrote the state (ctime, ns): a source changed later has a ctime at least this. */
  writtenNs: bigint;
}

/** Reads what restore recorded; undefined when restore did not run with this state dir. */
export async function readState(dir: string): Promise<LoadedState | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const state = JSON.parse(text) as RestoreState;
  const manifestText = await readFile(join(dir, MANIFEST_FILE));
  const { manifest, problems } = parseManifest(manifestText);
  // A line dropped would make a source look like an artifact: better no save than a wrong one.
  if (problems.length > 0) {
    throw new NbcError('NBC_STATE', `${join(dir, MANIFEST_FILE)}, recorded by restore, is damaged `
      + `(${problems.length} bad line${problems.length === 1 ? '' : 's'}, e.g. ${problems[0]}); the next restore records it again`);
  }
  const { ctimeNs } = await lstat(join(dir, STATE_FILE), { bigint: true });
  return { dir, state, manifestText, manifest, writtenNs: ctimeNs };
}

/**
 * Finds the state of the restore whose root is `start` or one of its parents (a configurePhase
 * may `cd build`, so save can run below the root). Returns undefined when there is none.
 */
export async function findState(start: string): Promise<LoadedState | undefined> {
  for (let dir = start; ; dir = dirname(dir)) {
    const found = await readState(defaultStateDir(dir));
    if (found && found.state.root === dir) return found;
    if (dirname(dir) === dir) return undefined;
  }
}

const RESTORED_FILE = 'restored.json';

/** A restored file as settle needs it: its digest when saved and the time restore gave it (seconds). */
export type RestoredFile = [path: BytePath, digest: string, mtime: number];

export function writeRestored(dir: string, files: readonly RestoredFile[]): Promise<void> {
  return writeAtomically(join(dir, RESTORED_FILE), JSON.stringify(files));
}

/** The files the last restore with this state dir put in place; [] when it restored nothing. */
export async function readRestored(dir: string): Promise<RestoredFile[]> {
  try {
    return JSON.parse(await readFile(join(dir, RESTORED_FILE), 'utf8')) as RestoredFile[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new NbcError('NBC_STATE', `${join(dir, RESTORED_FILE)} is unreadable: ${(error as Error).message}`);
  }
}
