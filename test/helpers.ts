import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
export const execFileAsync = promisify(execFile);

/** A fresh directory under the temp dir; the returned function removes it. */
export async function tempDir(prefix = 'nbc-test-'): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with only the environment given (plus PATH), collecting its output; as another user with `uid`/`gid`. */
export function runCommand(command: string, args: string[],
  options: { cwd?: string; env?: Record<string, string>; uid?: number; gid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      ...(options.cwd ? { cwd: options.cwd } : {}), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid }), ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs the built CLI as a user would; the environment is only what the test passes (plus PATH). */
export function runCli(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  return runCommand(process.execPath, [CLI, ...args], options);
}

/** The warning lines of a CLI run's stderr. */
export function warningsOf(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('nix-build-cache: warning:'));
}

/** Writes files (path → content) below dir, each with mtime 1 as files in the Nix store have. */
export function writeTree(dir: string, files: Record<string, string | Buffer>, mtime = 1): void {
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    utimesSync(full, mtime, mtime);
  }
}

export interface Snapshot {
  [path: string]: string;
}

/** Every path below dir with its type, mode, mtime (ns) and content digest: equal snapshots, equal trees. */
export function snapshot(dir: string): Snapshot {
  const result: Snapshot = {};
  const visit = (path: string, rel: string) => {
    for (const name of readdirSync(path).sort()) {
      const full = join(path, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const stat = lstatSync(full, { bigint: true });
      const common = `mode=${(stat.mode & 0o7777n).toString(8)} mtime=${stat.mtimeNs}`;
      if (stat.isDirectory()) {
        result[relPath] = `dir ${common}`;
        visit(full, relPath);
      } else if (stat.isSymbolicLink()) result[relPath] = `link ${readlinkSync(full)} ${common}`;
      else result[relPath] = `file ${createHash('md5').update(readFileSync(full)).digest('hex')} ${common}`;
    }
  };
  visit(dir, '');
  return result;
}
