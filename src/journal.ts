// The restore journal: what a restore is about to move into the tree, written before the first
// move and removed after the last. A journal found later means a restore died half-way: the next
// restore of that tree removes what it had moved in before it hashes the tree, so that
// half-restored artifacts are never taken for sources.
import { lstat, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PARTIAL_SUFFIX } from './apply.js';
import { ancestorsOf, type BytePath } from './core/paths.js';
import { absolutePath } from './core/list-directory.js';

const JOURNAL_FILE = 'restore-journal.json';

interface Journal {
  root: string;
  /** Byte paths, parents before children. */
  paths: readonly BytePath[];
}

export async function writeJournal(stateDir: string, root: string, paths: readonly BytePath[]): Promise<void> {
  const path = join(stateDir, JOURNAL_FILE);
  const temporary = `${path}.tmp`;
  await writeFile(temporary, JSON.stringify({ root, paths } satisfies Journal), { mode: 0o600 });
  await rename(temporary, path);
}

export function clearJournal(stateDir: string): Promise<void> {
  return rm(join(stateDir, JOURNAL_FILE), { force: true });
}

/** The journal; undefined when there is none, 'unreadable' when it is damaged. */
async function readJournal(stateDir: string): Promise<Journal | 'unreadable' | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(stateDir, JOURNAL_FILE), 'utf8')) as Partial<Journal>;
    if (typeof parsed.root === 'string' && Array.isArray(parsed.paths) && parsed.paths.every((p) => typeof p === 'string')) {
      return parsed as Journal;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  }
  return 'unreadable';
}

/** Whether every directory between the root and `path` is a real directory (never follow a link out). */
async function reachable(root: Buffer, path: BytePath): Promise<boolean> {
  for (const dir of ancestorsOf(path)) {
    const stat = await lstat(absolutePath(root, dir)).catch(() => undefined);
    if (!stat?.isDirectory()) return false;
  }
  return true;
}

/**
 * Undoes an interrupted restore of `root`: removes every path its journal lists (whatever the
 * build put there since: the build tool makes it again). Returns a message for the user, or
 * undefined when no restore was interrupted.
 */
export async function recoverInterruptedRestore(stateDir: string, root: string): Promise<string | undefined> {
  const journal = await readJournal(stateDir);
  if (journal === undefined) return undefined;
  if (journal === 'unreadable' || journal.root !== root) {
    await clearJournal(stateDir);
    return journal === 'unreadable'
      ? 'an earlier restore of this tree was interrupted and its journal is unreadable; what it moved in counts as new files'
      : undefined;
  }
  const rootBytes = Buffer.from(root);
  let removed = 0;
  for (const path of [...journal.paths].reverse()) {
    if (!await reachable(rootBytes, path)) continue;
    const target = absolutePath(rootBytes, path);
    await rm(Buffer.concat([target, Buffer.from(PARTIAL_SUFFIX)]), { force: true });
    if (await lstat(target).catch(() => undefined)) {
      await rm(target, { recursive: true, force: true });
      removed++;
    }
  }
  // Last: killed before this, the next restore removes what is left.
  await clearJournal(stateDir);
  return `an earlier restore of this tree was interrupted; removed the ${removed} artifacts it had moved in before hashing`;
}
