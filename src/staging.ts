// Rewrites made in staging, before the artifacts enter the tree: the build root when the cache
// was saved elsewhere, and the times ninja recorded for its outputs.
import { chmod, lstat, readFile, writeFile } from 'node:fs/promises';
import { NINJA_DEPS, NINJA_LOG, ninjaCommandsName, rewriteNinjaDeps, rewriteNinjaLog, type MapTime } from './core/ninja.js';
import { textFromBytePath, type BytePath } from './core/paths.js';
import { restoredMs, type ArtifactClock, type ArtifactEntry } from './core/plan.js';
import { replaceRoot, unplainRoot } from './core/relocate.js';
import { NbcError } from './core/errors.js';
import { absolutePath } from './core/list-directory.js';

/** A cache that cannot be restored at this root exactly: a miss, with the reason. */
export class NotRelocatable extends NbcError {
  constructor(reason: string) {
    super('NBC_NOT_RELOCATABLE', reason);
    this.name = 'NotRelocatable';
  }
}

function baseName(path: BytePath): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Writes a staged file, read-only ones included, keeping its mode. */
async function overwrite(file: Buffer, data: Buffer): Promise<void> {
  const { mode } = await lstat(file);
  if (!(mode & 0o200)) await chmod(file, mode | 0o200);
  await writeFile(file, data);
  if (!(mode & 0o200)) await chmod(file, mode & 0o7777);
}

/**
 * Rewrites the build root `from` (where the cache was saved) to `to` in every staged text file
 * that mentions it (save listed them: `rooted`), and in ninja's deps log. Throws NotRelocatable where that would not give what
 * a clean build at `to` gives: a binary file holding the root (an object's debug info, an RPATH,
 * a pickle), or ninja commands that name it (ninja would run them all again). Returns the paths rewritten.
 */
export async function relocateStaging(staging: string, entries: readonly ArtifactEntry[], from: string, to: string,
  rooted: ReadonlySet<BytePath>): Promise<BytePath[]> {
  const problem = unplainRoot(from) ?? unplainRoot(to);
  if (problem) throw new NotRelocatable(problem);
  const stagingBytes = Buffer.from(staging);
  const fromBytes = Buffer.from(from);
  const rewriteText = (text: string) => replaceRoot(text, from, to);
  const rewritten: BytePath[] = [];
  const ninjaFiles: string[] = [];
  for (const entry of entries) {
    const isNinja = entry.path.endsWith('.ninja');
    if (entry.kind !== 'file' || (!isNinja && !rooted.has(entry.path))) continue;
    const file = absolutePath(stagingBytes, entry.path);
    const data = await readFile(file);
    if (isNinja) ninjaFiles.push(data.toString('latin1'));
    if (!data.includes(fromBytes)) continue;
    let replaced: Buffer | undefined;
    if (baseName(entry.path) === NINJA_DEPS) {
      replaced = rewriteNinjaDeps(data, (time) => time, (path) => Buffer.from(rewriteText(path.toString('latin1')) ?? path.toString('latin1'), 'latin1'));
      if (!replaced) throw new NotRelocatable(`${textFromBytePath(entry.path)} is a ninja deps log of an unknown version`);
    } else if (data.includes(0)) {
      throw new NotRelocatable(`${textFromBytePath(entry.path)} is a binary file that holds the build root ${from}`);
    } else {
      const text = rewriteText(data.toString('latin1'));
      if (text === undefined) continue;
      replaced = Buffer.from(text, 'latin1');
    }
    await overwrite(file, replaced);
    rewritten.push(entry.path);
  }
  if (ninjaCommandsName(ninjaFiles.join('\n'), from)) {
    throw new NotRelocatable(`ninja's commands name the build root ${from} (as CMake writes them), so ninja would run them all again`);
  }
  return rewritten;
}

/**
 * Moves the times in ninja's logs (`.ninja_log`, `.ninja_deps`) with the artifacts: each recorded
 * time becomes the restored time of its archived second, so outputs stay as new as ninja recorded.
 */
export async function moveNinjaTimes(staging: string, entries: readonly ArtifactEntry[], clock: ArtifactClock): Promise<void> {
  const mapTime: MapTime = (ns) => (ns <= 0n ? ns : BigInt(restoredMs(clock, Number(ns / 1_000_000_000n))) * 1_000_000n);
  const stagingBytes = Buffer.from(staging);
  for (const entry of entries) {
    const name = baseName(entry.path);
    if (entry.kind !== 'file' || (name !== NINJA_LOG && name !== NINJA_DEPS)) continue;
    const file = absolutePath(stagingBytes, entry.path);
    const data = await readFile(file);
    const moved = name === NINJA_LOG ? rewriteNinjaLog(data, mapTime) : rewriteNinjaDeps(data, mapTime);
    if (moved) await overwrite(file, moved);
  }
}
