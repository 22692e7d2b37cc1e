/**
 * Driving real build tools through the CLI the way a Nix build does: a fresh tree of sources with
 * mtime 1, restore, configure, settle, build, save. A compiler wrapper outside the tree logs every
 * compile and link, so each step knows exactly what the build tool redid.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { CLI, runCli, runCommand, type CliResult } from '../helpers.js';
import { autotoolsInputs, cmakeSources, makeSources, mesonSources, type SourceTree } from './project.js';

/** Nix store files all have this mtime (seconds). */
export const STORE_MTIME = 1;

const WRAPPER = `#!/bin/sh
# cc-log: runs gcc with every argument unchanged. With CC_LOG set, first appends one line to it:
# "compile <source basename>" for a call with -c, otherwise "link <output basename>".
if [ -n "$CC_LOG" ]; then
  mode=link src= out= prev=
  for a in "$@"; do
    [ "$prev" = -o ] && out=$a
    case $a in -c) mode=compile ;; *.c) src=$a ;; esac
    prev=$a
  done
  if [ $mode = compile ]; then echo "compile \${src##*/}" >> "$CC_LOG"; else echo "link \${out##*/}" >> "$CC_LOG"; fi
fi
exec gcc "$@"
`;

/** Writes the compiler wrapper to `dir/cc-log` (outside every source tree) and returns its path. */
export function installWrapper(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'cc-log');
  writeFileSync(path, WRAPPER, { mode: 0o755 });
  return path;
}

/** Writes a source tree as Nix's unpackPhase leaves it: writable files, every file and directory with mtime 1. */
export function writeSources(root: string, files: SourceTree): void {
  rmSync(root, { recursive: true, force: true });
  const dirs = new Set<string>([root]);
  for (const [path, file] of Object.entries(files)) {
    const full = join(root, path);
    for (let d = dirname(full); d.length >= root.length && !dirs.has(d); d = dirname(d)) dirs.add(d);
    mkdirSync(dirname(full), { recursive: true });
    const { data, mode } = typeof file === 'string' ? { data: file, mode: 0o644 } : file;
    writeFileSync(full, data);
    chmodSync(full, mode);
    utimesSync(full, STORE_MTIME, STORE_MTIME);
  }
  for (const dir of [...dirs].sort((a, b) => b.length - a.length)) utimesSync(dir, STORE_MTIME, STORE_MTIME);
}

/** Every regular file below dir (relative paths), skipping `skip` directory names. */
export function listFiles(dir: string, skip: readonly string[] = []): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const stat = lstatSync(full);
      if (stat.isDirectory()) { if (!skip.includes(name)) visit(full); } else if (stat.isFile()) out.push(relative(dir, full));
    }
  };
  visit(dir);
  return out;
}

/** Runs autoreconf -fi once on the autotools inputs in `dir`; returns inputs plus everything it produced, as sources. */
export async function autoreconfSources(dir: string): Promise<SourceTree> {
  const inputs = autotoolsInputs();
  writeSources(dir, inputs);
  const result = await runCommand('autoreconf', ['-fi'], { cwd: dir, env: toolEnv(dir) });
  if (result.code !== 0) throw new Error(`autoreconf -fi failed: ${result.stderr}`);
  rmSync(join(dir, 'autom4te.cache'), { recursive: true, force: true });
  const files: SourceTree = { ...inputs };
  for (const path of listFiles(dir)) {
    if (path in inputs) continue;
    files[path] = { data: readFileSync(join(dir, path)), mode: lstatSync(join(dir, path)).mode & 0o777 };
  }
  return files;
}

function toolEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { HOME: home, LC_ALL: 'C', TMPDIR: process.env.TMPDIR ?? '/tmp', ...extra };
}

export interface BuildSystem {
  name: 'cmake' | 'meson' | 'autotools' | 'make';
  /** The --cache-dir, relative to the source root. */
  cacheDir: string;
  /** The sources, build description included; `scratch` is a directory it may work in. */
  sources: (scratch: string) => Promise<SourceTree> | SourceTree;
  /** The configure step, or none. */
  configure?: (cc: string) => { command: string; args: string[]; env: Record<string, string> };
  build: (cc: string) => { command: string; args: string[] };
  /** Every file whose bytes must equal a clean build's. */
  outputs: string[];
  /** How to run the program (relative to the root). */
  program: string;
  /** The link log line of each linked target when everything is linked. */
  allLinks: string[];
  /** Whether a cache saved at another root restores here exactly (else: a miss with the reason). */
  relocates: boolean;
}

export function buildSystems(): BuildSystem[] {
  return [
    {
      name: 'cmake', cacheDir: 'build', sources: cmakeSources,
      configure: (cc) => ({ command: 'cmake', args: ['-G', 'Ninja', '-S', '.', '-B', 'build', '-DCMAKE_BUILD_TYPE='], env: { CC: cc } }),
      build: () => ({ command: 'ninja', args: ['-C', 'build', '-j2'] }),
      outputs: ['build/prog', 'build/libshared.so.1.2.3', 'build/libstat.a'], program: 'build/prog',
      // CMake's commands name the root (ninja would rerun them) and build/prog's RPATH holds it.
      allLinks: ['libshared.so.1.2.3', 'prog'], relocates: false,
    },
    {
      name: 'meson', cacheDir: 'build', sources: mesonSources,
      configure: (cc) => ({ command: 'meson', args: ['setup', 'build', '--buildtype=release'], env: { CC: cc } }),
      build: () => ({ command: 'ninja', args: ['-C', 'build', '-j2'] }),
      outputs: ['build/prog', 'build/libshared.so.1.2.3', 'build/libstat.a'], program: 'build/prog',
      // meson-private/*.dat are pickles that hold the root.
      allLinks: ['libshared.so.1.2.3', 'prog'], relocates: false,
    },
    {
      name: 'autotools', cacheDir: '.', sources: (scratch) => autoreconfSources(join(scratch, 'autoreconf')),
      configure: (cc) => ({ command: './configure', args: [], env: { CC: cc } }),
      build: () => ({ command: 'make', args: ['-j2'] }),
      outputs: ['prog', '.libs/prog', '.libs/libshared.so.1.0.2', 'libstat.a'], program: 'prog',
      // autoconf's default -g puts the root in every object's debug info.
      allLinks: ['libshared.so.1.0.2', 'prog'], relocates: false,
    },
    {
      name: 'make', cacheDir: 'obj', sources: makeSources,
      build: (cc) => ({ command: 'make', args: ['-j2', `CC=${cc}`] }),
      outputs: ['obj/prog', 'obj/libshared.so', 'obj/libstat.a'], program: 'obj/prog',
      // Only the depfiles name the root: text, rewritten.
      allLinks: ['libshared.so', 'prog'], relocates: true,
    },
  ];
}

export interface ToolLog {
  /** Basenames of the sources compiled, sorted (a source compiled twice appears twice). */
  compiled: string[];
  /** Basenames of the outputs linked, sorted. */
  linked: string[];
  /** Headers the generator script wrote. */
  generated: string[];
}

export function readToolLog(path: string): ToolLog {
  const lines = existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  const pick = (verb: string) => lines.filter((l) => l.startsWith(`${verb} `)).map((l) => l.slice(verb.length + 1)).sort();
  return { compiled: pick('compile'), linked: pick('link'), generated: pick('generate') };
}

export interface Step extends ToolLog {
  root: string;
  /** Where it stopped, when a command failed. */
  failed?: string;
  /** Each command with its exit code and the tail of its output. */
  transcript: string[];
  report?: { outcome: string; hit?: { name: string }; attempts: { name: string; result: string; reason?: string }[]; warnings: string[] };
  settle: 'ran' | 'failed' | 'not run';
  /** Output path -> bytes (missing outputs are absent). */
  outputs: Record<string, Buffer>;
  /** The program's stdout, when it ran. */
  programOutput?: string;
  seconds: number;
}

export interface Driver {
  work: string;
  store: string;
  cc: string;
}

let stateCounter = 0;
/** The one place that runs `settle` (between configure and build), as the Nix wrapper's postConfigure does. */
export async function settle(root: string, cacheDir: string, stateDir: string): Promise<{ status: Step['settle']; result: CliResult }> {
  const result = await runCli(['settle', '--cache-dir', cacheDir, '--state-dir', stateDir], { cwd: root });
  return { status: result.code === 0 ? 'ran' : 'failed', result };
}

const tail = (text: string, lines = 15) => text.trimEnd().split('\n').slice(-lines).join('\n');

function collectOutputs(root: string, system: BuildSystem): Record<string, Buffer> {
  const outputs: Record<string, Buffer> = {};
  for (const path of system.outputs) if (existsSync(join(root, path))) outputs[path] = readFileSync(join(root, path));
  return outputs;
}

/**
 * One build in a fresh tree at `root`. With `cacheName`: restore → configure → settle → build →
 * save, as the Nix wrapper does. Without: configure → build only (a clean build, no cache at all).
 */
export async function freshBuild(driver: Driver, system: BuildSystem, root: string, files: SourceTree,
  cacheName?: string): Promise<Step> {
  const started = Date.now();
  writeSources(root, files);
  const id = `${system.name}-${++stateCounter}`;
  const stateDir = join(driver.work, 'state', id);
  const json = join(driver.work, 'state', `${id}.json`);
  mkdirSync(dirname(stateDir), { recursive: true });
  const log = join(driver.work, 'logs', `${id}.log`);
  mkdirSync(dirname(log), { recursive: true });
  const step: Step = { root, transcript: [], settle: 'not run', outputs: {}, compiled: [], linked: [], generated: [], seconds: 0 };
  let mark = Date.now();
  const record = (label: string, r: CliResult) => {
    step.transcript.push(`$ ${label} -> ${r.code} (${((Date.now() - mark) / 1000).toFixed(1)} s)\n${tail(r.stdout + r.stderr)}`);
    mark = Date.now();
    if (r.code !== 0 && step.failed === undefined) step.failed = label;
    return r.code === 0;
  };
  const cacheArgs = cacheName === undefined ? [] : ['--store', driver.store, '--cache-name', cacheName, '--cache-dir', system.cacheDir, '--state-dir', stateDir];
  const finish = () => {
    Object.assign(step, readToolLog(log), { outputs: collectOutputs(root, system), seconds: (Date.now() - started) / 1000 });
    return step;
  };
  if (cacheName !== undefined) {
    const restored = await runCli(['restore', ...cacheArgs, '--json', json, '--explain'], { cwd: root });
    if (!record('restore', restored)) return finish();
    step.report = JSON.parse(readFileSync(json, 'utf8')) as Step['report'];
  }
  if (system.configure) {
    const c = system.configure(driver.cc);
    if (!record(`${c.command} ${c.args.join(' ')}`, await runCommand(c.command, c.args, { cwd: root, env: toolEnv(driver.work, c.env) }))) return finish();
  }
  if (cacheName !== undefined) {
    mark = Date.now();
    const s = await settle(root, system.cacheDir, stateDir);
    step.settle = s.status;
    record('settle', s.result);
  }
  if (!await runBuild(driver, system, root, log, step)) return finish();
  mark = Date.now();
  if (cacheName !== undefined) record('save', await runCli(['save', ...cacheArgs], { cwd: root }));
  await runProgram(system, root, step);
  return finish();
}

async function runBuild(driver: Driver, system: BuildSystem, root: string, log: string, step: Step): Promise<boolean> {
  const b = system.build(driver.cc);
  const started = Date.now();
  const result = await runCommand(b.command, b.args, { cwd: root, env: toolEnv(driver.work, { CC_LOG: log }) });
  step.transcript.push(`$ ${b.command} ${b.args.join(' ')} -> ${result.code} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`
    + tail(result.stdout + result.stderr));
  if (result.code !== 0) step.failed ??= 'build';
  return result.code === 0;
}

async function runProgram(system: BuildSystem, root: string, step: Step): Promise<void> {
  const run = await runCommand(join(root, system.program), [], { cwd: root });
  if (run.code === 0) step.programOutput = run.stdout;
  else step.transcript.push(`$ ${system.program} -> ${run.code}\n${tail(run.stderr)}`);
}

/** Builds again in place, outside any Nix semantics (after `change`, if given), logging what it redid. */
export async function inPlaceRebuild(driver: Driver, system: BuildSystem, root: string, label: string,
  change?: () => void): Promise<Step> {
  const started = Date.now();
  change?.();
  const log = join(driver.work, 'logs', `${system.name}-inplace-${label}.log`);
  const step: Step = { root, transcript: [], settle: 'not run', outputs: {}, compiled: [], linked: [], generated: [], seconds: 0 };
  await runBuild(driver, system, root, log, step);
  await runProgram(system, root, step);
  return Object.assign(step, readToolLog(log), { outputs: collectOutputs(root, system), seconds: (Date.now() - started) / 1000 });
}

/** Files below `dir` whose bytes contain `needle`, split into text and binary (a NUL byte in the file). */
export function filesContaining(dir: string, needle: string): { text: string[]; binary: string[] } {
  const text: string[] = [];
  const binary: string[] = [];
  const bytes = Buffer.from(needle);
  for (const path of listFiles(dir)) {
    const data = readFileSync(join(dir, path));
    if (data.includes(bytes)) (data.includes(0) ? binary : text).push(path);
  }
  return { text, binary };
}

export { CLI };
