// Real SIGKILLs at chosen syscalls, with strace's fault injection and no hook in the product:
//   strace -f -qq -y -o LOG -e trace=S [-P PATH] -e inject=S:signal=SIGKILL:when=K <command>
// kills the whole process on entering the K-th call of S (the call itself never runs).
//
// strace counts `when=` per syscall and per tracee (thread), never over the run as a whole
// ("Accounting of syscalls that are subject to injection is done per syscall and per tracee",
// man strace), so "the N-th matching syscall of the run" cannot be one strace expression. Instead a
// traced, uninterrupted run of the same command (the profile) lists every matching syscall that
// touches the test's directories; N picks one of them, and it becomes an injection that hits exactly
// that call:
// - with -P PATH when the call names a path that is the same in every run (a source, an artifact,
//   state.json, the archive's key): then K counts only the calls of S on that path;
// - else (staging dirs and temporary files have random names) K counts all calls of S in its thread,
//   used only when no other thread makes K calls of S at all.
// Every kill run is traced too, and reports where the kill landed.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The syscalls that count as points of a run: every open, write, move, time change and removal. */
export const SYSCALLS = [
  'openat', 'open', 'creat', 'write', 'pwrite64', 'writev', 'mkdir', 'mkdirat', 'rename', 'renameat', 'renameat2',
  'utimensat', 'unlink', 'unlinkat', 'rmdir', 'chmod', 'fchmod', 'fchmodat', 'fsync', 'fdatasync', 'ftruncate',
  'symlink', 'symlinkat', 'link', 'linkat', 'copy_file_range',
];
/** Syscalls that threads also make on eventfds and pipes, as often as timing has it. */
const UNCOUNTABLE = new Set(['write', 'pwrite64', 'writev']);
/** Syscalls whose path is that of their first argument, a file descriptor (strace -y decodes it). */
const BY_FD = new Set(['write', 'pwrite64', 'writev', 'fchmod', 'fsync', 'fdatasync', 'ftruncate']);

export interface Spawned {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with only the environment given (plus PATH); reports a death by signal as such. */
export function spawnWithSignal(command: string, args: string[], options: { cwd: string; env: Record<string, string> }): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export async function straceWorks(): Promise<boolean> {
  try {
    const probe = await spawnWithSignal('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=getpid', '-e', 'inject=getpid:signal=SIGKILL:when=1',
      process.execPath, '-e', 'process.pid'], { cwd: '/', env: {} });
    return probe.signal === 'SIGKILL';
  } catch {
    return false;
  }
}

/**
 * The directories a run works in (the build dir, the store…), by name: paths are written relative
 * to them ("{top}/source/obj/a.o") so that a point of one run names the same call in another.
 */
export type Roots = Record<string, string>;

export interface TraceEvent {
  /** Position among the relevant calls of the run (0-based). */
  index: number;
  tid: number;
  syscall: string;
  /** This call's number among the calls of `syscall` in its thread (1-based). */
  ordinal: number;
  /** Paths it touches, relative to a root ("{top}/…"); empty when it touches none of the roots. */
  paths: string[];
  /** The path strace -P checks (the first path argument, or the fd's), relative; undefined when outside the roots. */
  first: string | undefined;
  line: string;
}

type RawEvent = Omit<TraceEvent, 'index'>;

function relativize(path: string, roots: Roots): string | undefined {
  // Longest root first: the store may lie inside the work dir.
  for (const [name, dir] of Object.entries(roots).sort((a, b) => b[1].length - a[1].length)) {
    if (path === dir || path.startsWith(`${dir}/`)) return `{${name}}${path.slice(dir.length)}`;
  }
  return undefined;
}

function absolutize(path: string, roots: Roots): string {
  return path.replace(/^\{(\w+)\}/, (_match, name: string) => {
    const dir = roots[name];
    if (dir === undefined) throw new Error(`no root ${name}`);
    return dir;
  });
}

function unquote(text: string): string {
  return text.replace(/\\(x[0-9a-f]{2}|[0-7]{1,3}|.)/g, (_m, esc: string) => {
    if (esc.startsWith('x')) return String.fromCharCode(parseInt(esc.slice(1), 16));
    if (/^[0-7]+$/.test(esc)) return String.fromCharCode(parseInt(esc, 8));
    return ({ n: '\n', t: '\t', r: '\r' } as Record<string, string>)[esc] ?? esc;
  });
}

/** Every call in an `strace -f -y -o` log, in order, with its per-thread ordinal and its paths. */
export function parseLog(text: string, roots: Roots): RawEvent[] {
  const counts = new Map<string, number>();
  const events: RawEvent[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\d+)\s+([a-z0-9_]+)\((.*)$/.exec(line);
    if (!match) continue;
    const tid = Number(match[1]);
    const syscall = match[2]!;
    // -y decorates AT_FDCWD with the cwd (the source tree): not a path the call touches.
    const args = match[3]!.replace(/AT_FDCWD<[^>]*>/g, 'AT_FDCWD');
    const key = `${tid} ${syscall}`;
    const ordinal = (counts.get(key) ?? 0) + 1;
    counts.set(key, ordinal);
    const found: string[] = [];
    if (BY_FD.has(syscall)) {
      const fd = /^\d+<([^>]*)>/.exec(args);
      if (fd) found.push(fd[1]!);
    } else {
      // Quoted path arguments; the decorated result of open (= 22</path>) names the same path.
      const body = args.replace(/\)\s+=.*$/, '');
      for (const quoted of body.matchAll(/"((?:[^"\\]|\\.)*)"/g)) found.push(unquote(quoted[1]!));
    }
    const relative = found.map((p) => relativize(p, roots));
    const paths = relative.filter((p): p is string => p !== undefined);
    events.push({ tid, syscall, ordinal, paths, first: relative[0], line });
  }
  return events;
}

export interface KillPoint {
  /** Which relevant call of the profile (0-based) this point kills at, of `total`. */
  n: number;
  total: number;
  syscall: string;
  when: number;
  /** -P: count (and kill) only calls of `syscall` on this path. */
  path?: string;
  /** What the profile did at this point: "utimensat {top}/source/obj/a.o". */
  label: string;
}

export interface Profile {
  /** Relevant calls: those that touch one of the roots. */
  events: TraceEvent[];
  /** Calls per syscall among the relevant ones. */
  counts: Record<string, number>;
  /** Relevant calls that can be hit exactly, by path or by per-thread ordinal. */
  targetable: number;
  specs: Map<number, KillPoint>;
}

export function traceArgs(log: string, syscalls: readonly string[] = SYSCALLS): string[] {
  return ['-f', '-qq', '-y', '-o', log, '-e', `trace=${syscalls.join(',')}`];
}

/**
 * Reads two profile logs of the same command (in different directories): the first gives the
 * calls, the second tells which paths are the same in every run (not staging-XXXXXX, not .tmp-PID).
 */
export function buildProfile(first: { log: string; roots: Roots }, second: { log: string; roots: Roots }): Profile {
  const all = parseLog(readFileSync(first.log, 'utf8'), first.roots);
  const stable = new Set(parseLog(readFileSync(second.log, 'utf8'), second.roots).flatMap((e) => e.paths));
  const totals = new Map<string, Map<number, number>>();
  for (const event of all) {
    const byTid = totals.get(event.syscall) ?? new Map<number, number>();
    byTid.set(event.tid, Math.max(byTid.get(event.tid) ?? 0, event.ordinal));
    totals.set(event.syscall, byTid);
  }
  const at = new Map<TraceEvent, number>();
  const events: TraceEvent[] = [];
  all.forEach((e, position) => {
    if (e.paths.length === 0) return;
    const event = { ...e, index: events.length };
    events.push(event);
    at.set(event, position);
  });
  const counts: Record<string, number> = {};
  for (const event of events) counts[event.syscall] = (counts[event.syscall] ?? 0) + 1;
  const specs = new Map<number, KillPoint>();
  for (const event of events) {
    const label = `${event.syscall} ${event.paths.join(' -> ')}`;
    const base = { n: event.index, total: events.length, syscall: event.syscall, label };
    // strace -P looks at the first path argument only (rename: the old name), or at the fd.
    const path = event.first !== undefined && stable.has(event.first) ? event.first : undefined;
    if (path !== undefined) {
      // K among the calls of this syscall on this path, in this thread; no other thread may get there.
      const onPath = (e: RawEvent) => e.syscall === event.syscall && e.first === path;
      const when = all.slice(0, at.get(event)! + 1).filter((e) => onPath(e) && e.tid === event.tid).length;
      const others = new Map<number, number>();
      for (const e of all) if (onPath(e) && e.tid !== event.tid) others.set(e.tid, (others.get(e.tid) ?? 0) + 1);
      if ([...others.values()].every((count) => count < when)) specs.set(event.index, { ...base, when, path });
      continue;
    }
    // No per-thread ordinal for writes (see UNCOUNTABLE).
    if (UNCOUNTABLE.has(event.syscall)) continue;
    const others = [...(totals.get(event.syscall) ?? new Map<number, number>())].filter(([tid]) => tid !== event.tid);
    if (others.every(([, count]) => count < event.ordinal)) specs.set(event.index, { ...base, when: event.ordinal });
  }
  return { events, counts, targetable: specs.size, specs };
}

/** `count` points spread evenly over the relevant calls: each the targetable call nearest its place. */
export function spreadPoints(profile: Profile, count: number): KillPoint[] {
  const total = profile.events.length;
  const taken = new Set<number>();
  const points: KillPoint[] = [];
  for (let i = 0; i < count; i++) {
    const wanted = Math.min(total - 1, Math.floor(((i + 0.5) * total) / count));
    for (let distance = 0; distance < total; distance++) {
      const candidate = [wanted + distance, wanted - distance].find((n) => n >= 0 && n < total && !taken.has(n) && profile.specs.has(n));
      if (candidate !== undefined) {
        taken.add(candidate);
        points.push(profile.specs.get(candidate)!);
        break;
      }
    }
  }
  return points.sort((a, b) => a.n - b.n);
}

/** strace arguments that SIGKILL the command at `point` and log the calls counted for it. */
export function killArgs(point: KillPoint, roots: Roots, log: string): string[] {
  // Not --seccomp-bpf: with -P, strace 6.1 here then never delivers the injected signal.
  return ['-f', '-qq', '-y', '-o', log, '-e', `trace=${point.syscall}`,
    ...(point.path === undefined ? [] : ['-P', absolutize(point.path, roots)]),
    '-e', `inject=${point.syscall}:signal=SIGKILL:when=${point.when}`];
}

/** Where the kill landed according to the kill run's log: the call that reached `when`. */
export function landing(point: KillPoint, roots: Roots, log: string): string | undefined {
  const events = parseLog(readFileSync(log, 'utf8'), roots);
  const hit = events.find((e) => e.syscall === point.syscall && e.ordinal === point.when && / = \?$|<unfinished \.\.\.>$/.test(e.line));
  return hit && `${hit.syscall} ${hit.paths.join(' -> ')}`;
}

/** A label with the names that differ in every run (mkdtemp's staging-XXXXXX, .tmp-PID-…) masked. */
export function masked(label: string): string {
  return label.replace(/(staging-)[A-Za-z0-9]{6}/g, '$1*').replace(/(\.tmp-)[0-9a-f-]+/g, '$1*');
}

/** Whether a kill landed on the call its point names. */
export function landedAsPlanned(point: KillPoint, landed: string | undefined): boolean {
  return landed !== undefined && masked(landed) === masked(point.label);
}

/** Runs fn over items, at most `limit` at once; results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

