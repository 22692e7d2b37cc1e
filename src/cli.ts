#!/usr/bin/env node
// The only module that touches argv, the environment, stdout/stderr and the exit code.
import { readFileSync, statSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCredentials, type Credentials } from './core/credentials.js';
import { formatManifest } from './core/manifest.js';
import { parseDuration, type CacheObject } from './core/prune.js';
import { nearest } from './core/suggest.js';
import { ConfigError, describeError } from './errors.js';
import { resolveOptions, type RestoreOptions } from './options.js';
import { phaseLine, progressLine, type ProgressListener } from './progress.js';
// Each command loads only what it runs (tar, piscina, the AWS SDK): start-up is part of every build.
import { summaryLine, whyAttempt, type ListedCache, type Report, type RestoreReport, type SaveReport, type StatsReport } from './report.js';
import { FileStore } from './stores/file.js';
import { fileStorePath, isDirectoryStore, type S3Settings } from './stores/index.js';
import { VERSION } from './version.js';

type Command = 'restore' | 'settle' | 'save' | 'hash' | 'ls' | 'prune' | 'stats' | 'serve';
const COMMANDS: Record<Command, string> = {
  restore: 'hash the source tree, fetch the newest usable cache and set times so that the build redoes what changed (run in preConfigure, from the source root)',
  settle: 'after configure: give restored files that configure rewrote with the same content their restored times back (run in postConfigure)',
  save: 'archive the cache dirs with the manifest recorded by restore and store it under the cache name (run in preInstall)',
  hash: 'print the MD5 manifest of DIR (default: the current directory) in md5sum format',
  ls: 'list the cache archives in the store: name, size, age, key',
  prune: 'delete cache archives by age, by total size (least recently restored first) and/or keeping the newest N per name',
  stats: 'show the hit rate, files reused and recompiled, bytes and time per cache name, from the events restore and save recorded',
  serve: 'run the daemon that sandboxed builds reach at --socket (--store unix://SOCKET): it holds the upstream store and its credentials',
};

interface Spec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  value?: string;
  /** Environment variables read when the flag is absent, first set wins. */
  env?: string[];
  fallback: string;
  help: string;
  commands: readonly Command[];
}

const BUILD = ['restore', 'save'] as const;
const STORES = ['restore', 'save', 'ls', 'prune', 'serve'] as const;
const ALL = ['restore', 'settle', 'save', 'hash', 'ls', 'prune', 'stats', 'serve'] as const;
const AFTER_RESTORE = ['restore', 'settle', 'save'] as const;
const OPTIONS: Record<string, Spec> = {
  store: { type: 'string', value: 'DIR|URL', env: ['NBC_STORE'], fallback: '$XDG_CACHE_HOME/nix-build-cache (or ~/.cache/nix-build-cache)', help: 'where archives are kept: a directory, file:///DIR, s3://BUCKET[/PREFIX] or unix:///SOCKET (a serve daemon; serve: its upstream store)', commands: [...STORES, 'stats'] },
  socket: { type: 'string', value: 'PATH', env: ['NBC_SOCKET'], fallback: 'required', help: 'the Unix socket to listen on; list its directory in extra-sandbox-paths', commands: ['serve'] },
  'socket-group': { type: 'string', value: 'GROUP', fallback: 'nixbld, if it exists', help: 'group (name or gid) whose members may connect: the socket is 0660 of that group', commands: ['serve'] },
  'disk-cache': { type: 'string', value: 'DIR', env: ['NBC_DISK_CACHE'], fallback: 'none', help: 'keep fetched and saved archives on local disk here, least recently used evicted first', commands: ['serve'] },
  'max-disk': { type: 'string', value: 'SIZE', env: ['NBC_MAX_DISK'], fallback: '10G', help: 'size cap of --disk-cache (K, M, G suffixes)', commands: ['serve'] },
  'read-only': { type: 'boolean', fallback: 'off', help: 'refuse saves and deletes', commands: ['serve'] },
  writer: { type: 'string', multiple: true, value: 'USER|@GROUP', fallback: 'everyone who can connect', help: 'only this user (name or uid) or the members of @GROUP (name or gid) may save and delete; repeatable', commands: ['serve'] },
  'max-object-size': { type: 'string', value: 'SIZE', fallback: 'none', help: 'refuse archives larger than this (K, M, G suffixes)', commands: ['serve'] },
  'cache-name': { type: 'string', value: 'NAME', env: ['NBC_CACHE_NAME'], fallback: 'required (stats: every name)', help: "this build's cache, e.g. REPO/BRANCH (stats: count only this one)", commands: [...BUILD, 'stats'] },
  fallback: { type: 'string', multiple: true, value: 'NAME', env: ['NBC_FALLBACKS'], fallback: 'none', help: 'cache to try when --cache-name has none; repeatable, tried in order (env: comma-separated)', commands: ['restore'] },
  'cache-dir': { type: 'string', multiple: true, value: 'DIR', env: ['NBC_CACHE_DIRS'], fallback: 'required', help: 'directory (relative to the source root) kept between builds; repeatable; "." is the whole tree (env: comma-separated)', commands: AFTER_RESTORE },
  'state-dir': { type: 'string', value: 'DIR', env: ['NBC_STATE_DIR'], fallback: '$NIX_BUILD_TOP/.nix-build-cache, else one per source root in $TMPDIR', help: 'where restore records the manifest for settle and save', commands: AFTER_RESTORE },
  root: { type: 'string', value: 'DIR', env: ['NBC_ROOT'], fallback: 'the current directory (settle, save: the root restore recorded for it or a parent)', help: 'the source root', commands: AFTER_RESTORE },
  compression: { type: 'string', value: 'gzip|zstd|none', env: ['NBC_COMPRESSION'], fallback: 'zstd', help: 'archive compression (part of the key; reading detects it); zstd runs the zstd program, level 1 on two threads', commands: BUILD },
  salt: { type: 'string', value: 'TEXT', env: ['NBC_SALT'], fallback: 'none', help: 'anything that makes caches incompatible, e.g. a toolchain fingerprint (part of the key)', commands: BUILD },
  'lookup-only': { type: 'boolean', fallback: 'off', help: 'only say whether there is a hit (and which key): download nothing, change nothing', commands: ['restore'] },
  'fail-on-miss': { type: 'boolean', env: ['NBC_FAIL_ON_MISS'], fallback: 'off', help: 'exit 1 when no cache was restored (after leaving a clean tree for a build from scratch)', commands: ['restore'] },
  explain: { type: 'boolean', fallback: 'off', help: 'print how the plan classified each file: unchanged, changed, new, removed, restored, skipped, rewritten', commands: ['restore'] },
  'max-unpacked': { type: 'string', value: 'SIZE', env: ['NBC_MAX_UNPACKED'], fallback: '32G', help: 'refuse archives that unpack to more (K, M, G suffixes)', commands: ['restore'] },
  'max-entries': { type: 'string', value: 'N', env: ['NBC_MAX_ENTRIES'], fallback: '2000000', help: 'refuse archives with more entries', commands: ['restore'] },
  endpoint: { type: 'string', value: 'URL', env: ['NBC_S3_ENDPOINT', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'], fallback: 'AWS', help: 'S3-compatible server (path-style addressing)', commands: STORES },
  region: { type: 'string', value: 'REGION', env: ['AWS_REGION', 'AWS_DEFAULT_REGION'], fallback: 'us-east-1', help: 'S3 region', commands: STORES },
  'credentials-file': { type: 'string', value: 'FILE', env: ['NBC_CREDENTIALS_FILE'], fallback: 'none', help: 'AWS shared-credentials file, or two lines: key id, secret', commands: STORES },
  profile: { type: 'string', value: 'NAME', env: ['AWS_PROFILE'], fallback: 'default', help: 'profile to read from --credentials-file', commands: STORES },
  'access-key-id': { type: 'string', value: 'ID', env: ['AWS_ACCESS_KEY_ID'], fallback: "the AWS SDK's chain", help: 'S3 access key id', commands: STORES },
  'secret-access-key': { type: 'string', value: 'SECRET', env: ['AWS_SECRET_ACCESS_KEY'], fallback: "the AWS SDK's chain", help: 'S3 secret (prefer --credentials-file: arguments are visible to other users)', commands: STORES },
  'part-size': { type: 'string', value: 'MIB', env: ['NBC_S3_PART_SIZE'], fallback: '8', help: 'MiB per uploaded part (at least 5); upload memory ≈ 4 × queue size × part size + 80 MiB', commands: ['save'] },
  'queue-size': { type: 'string', value: 'N', env: ['NBC_S3_QUEUE_SIZE'], fallback: '4', help: 'parts uploaded at once', commands: ['save'] },
  'connect-timeout': { type: 'string', value: 'SECONDS', env: ['NBC_S3_CONNECT_TIMEOUT'], fallback: '2', help: 'time to wait for a connection to the S3 server', commands: STORES },
  'socket-timeout': { type: 'string', value: 'SECONDS', env: ['NBC_S3_SOCKET_TIMEOUT'], fallback: '10', help: 'time a request or download may sit idle', commands: STORES },
  deadline: { type: 'string', value: 'SECONDS', env: ['NBC_DEADLINE'], fallback: '10 + 1 per MB moved (gives up below 1 MB/s on average)', help: 'most time the work with the store may take (restore: fetch and unpack; save: pack and upload), then a warning and the build goes on', commands: BUILD },
  'max-attempts': { type: 'string', value: 'N', env: ['NBC_S3_MAX_ATTEMPTS'], fallback: '3', help: 'attempts per S3 request, retries included', commands: STORES },
  'allow-partial': { type: 'boolean', env: ['NBC_ALLOW_PARTIAL'], fallback: 'off', help: 'save the cache dirs that can be saved when others are missing, not directories or symlinks (else such a save is skipped)', commands: ['save'] },
  'build-failed': { type: 'boolean', fallback: 'off', help: 'the build failed (save-on-failure): say so in the report and the archive', commands: ['save'] },
  events: { type: 'string', value: 'FILE|off', env: ['NBC_EVENTS'], fallback: 'DIR/.events.jsonl in a directory store, else $XDG_STATE_HOME/nix-build-cache/events.jsonl', help: 'where restore and save append one JSON line each, for stats; off: record nothing', commands: ['restore', 'save', 'stats'] },
  since: { type: 'string', value: 'AGE', fallback: 'all events', help: 'count only the events of the last AGE (30m, 12h, 7d, 2w)', commands: ['stats'] },
  'older-than': { type: 'string', value: 'AGE', fallback: 'none', help: 'delete archives older than AGE (30m, 12h, 7d, 2w)', commands: ['prune'] },
  'max-size': { type: 'string', value: 'SIZE', fallback: 'none', help: 'then delete the least recently restored archives (by save time if never restored) until the store holds at most SIZE, as ccache max_size (K, M, G suffixes)', commands: ['prune'] },
  keep: { type: 'string', value: 'N', fallback: 'none', help: 'never delete the newest N archives of each cache name', commands: ['prune'] },
  'dry-run': { type: 'boolean', fallback: 'off', help: 'list what prune would delete, delete nothing', commands: ['prune'] },
  threads: { type: 'string', value: 'N', env: ['NBC_THREADS'], fallback: 'number of cores', help: 'worker threads for hashing and setting times', commands: ['restore', 'save', 'hash'] },
  json: { type: 'string', value: 'FILE', env: ['NBC_JSON'], fallback: 'none', help: "write the run's report as JSON to FILE (-: to stdout, and listings to stderr)", commands: ALL },
  strict: { type: 'boolean', env: ['NBC_STRICT'], fallback: 'off', help: 'fail (exit 1) on any cache problem instead of warning and building on', commands: AFTER_RESTORE },
  quiet: { type: 'boolean', env: ['NBC_QUIET'], fallback: 'off', help: 'print warnings only: no progress, no summary line', commands: ALL },
  help: { type: 'boolean', fallback: '', help: 'show this help', commands: ALL },
};

function usage(command?: Command): string {
  if (!command) {
    return [`nix-build-cache ${VERSION}: incremental Nix builds from a cache of intermediate files`, '',
      'Usage: nix-build-cache <command> [options]', '', 'Commands:',
      ...Object.entries(COMMANDS).map(([name, text]) => `  ${name.padEnd(8)} ${text}`), '',
      "Run 'nix-build-cache <command> --help' for its options. 'nix-build-cache --version' prints the version.",
      'Exit status: 0 also when the cache is unusable (a warning says why); 2 for invalid options or a missing directory;',
      '1 with --strict on a cache problem, with --fail-on-miss on a miss, and for an error of ls, prune, stats or serve.'].join('\n');
  }
  const lines = Object.entries(OPTIONS).filter(([, spec]) => spec.commands.includes(command)).map(([name, spec]) => {
    const flag = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
    const extra = [spec.fallback && `default: ${spec.fallback}`, spec.env && `env: ${spec.env.join(', ')}`].filter(Boolean).join('; ');
    return `  ${flag.padEnd(28)} ${spec.help}${extra ? ` [${extra}]` : ''}`;
  });
  return [`Usage: nix-build-cache ${command} [options]${command === 'hash' ? ' [DIR]' : ''}`, '', COMMANDS[command], '', 'Options:', ...lines].join('\n');
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
type Values = Record<string, string | boolean | string[] | undefined>;

/** Reads options from the command line, else the environment; collects problems as `--flag: …`. */
class Gathered {
  readonly problems: string[] = [];
  readonly #values: Values;
  readonly #env: NodeJS.ProcessEnv;

  constructor(values: Values, env: NodeJS.ProcessEnv) {
    this.#values = values;
    this.#env = env;
  }

  get(name: string): string | boolean | string[] | undefined {
    const spec = OPTIONS[name]!;
    if (this.#values[name] !== undefined) return this.#values[name];
    const fromEnv = spec.env?.map((variable) => this.#env[variable]).find((value) => value !== undefined && value !== '');
    if (fromEnv === undefined) return undefined;
    if (spec.type === 'boolean') return TRUE.has(fromEnv.toLowerCase());
    // Comma-separated: a directory name may hold spaces.
    return spec.multiple ? fromEnv.split(',').map((item) => item.trim()).filter(Boolean) : fromEnv;
  }

  string(name: string): string | undefined {
    return this.get(name) as string | undefined;
  }

  /** A size such as 512M or 32G, in bytes; a problem when it is not one. */
  size(name: string): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const match = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(text.trim());
    if (!match || Number(match[1]) <= 0) {
      this.problems.push(`--${name}: use a size such as 512M or 32G (got ${JSON.stringify(text)})`);
      return undefined;
    }
    return Math.round(Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!);
  }

  /** A positive number option, times `scale`; a problem when it is not a positive number. */
  number(name: string, scale = 1): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) {
      this.problems.push(`--${name}: must be a positive number (got ${JSON.stringify(text)})`);
      return undefined;
    }
    return Math.round(value * scale);
  }
}

/** Credentials from flags, else --credentials-file, else the AWS environment variables. */
function credentials(options: Gathered, values: Values, env: NodeJS.ProcessEnv): Credentials | undefined {
  const flagId = values['access-key-id'] as string | undefined;
  const flagSecret = values['secret-access-key'] as string | undefined;
  if (flagId !== undefined && flagSecret !== undefined) return { accessKeyId: flagId, secretAccessKey: flagSecret };
  const file = options.string('credentials-file');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      options.problems.push(`--credentials-file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
    const parsed = parseCredentials(text, options.string('profile') ?? 'default');
    if ('problem' in parsed) options.problems.push(`--credentials-file: ${file}: ${parsed.problem}`);
    return 'problem' in parsed ? undefined : parsed;
  }
  const id = options.string('access-key-id');
  const secret = options.string('secret-access-key');
  if (id === undefined || secret === undefined) return undefined;
  return env.AWS_SESSION_TOKEN ? { accessKeyId: id, secretAccessKey: secret, sessionToken: env.AWS_SESSION_TOKEN }
    : { accessKeyId: id, secretAccessKey: secret };
}

function s3Settings(options: Gathered, values: Values, env: NodeJS.ProcessEnv): S3Settings {
  const settings: S3Settings = {};
  const set = <K extends keyof S3Settings>(key: K, value: S3Settings[K] | undefined) => { if (value !== undefined) settings[key] = value; };
  set('endpoint', options.string('endpoint'));
  set('region', options.string('region'));
  set('credentials', credentials(options, values, env));
  const partSize = options.number('part-size', 1 << 20);
  // Said here in MiB, as given: the library would say it in bytes.
  if (partSize !== undefined && partSize < 5 << 20) options.problems.push(`--part-size: must be at least 5 (MiB, S3's minimum) (got ${options.string('part-size')})`);
  else set('partSize', partSize);
  set('queueSize', options.number('queue-size'));
  set('connectTimeout', options.number('connect-timeout', 1000));
  set('socketTimeout', options.number('socket-timeout', 1000));
  set('maxAttempts', options.number('max-attempts'));
  return settings;
}

function storeLocation(options: Gathered, env: NodeJS.ProcessEnv): string {
  return options.string('store') ?? join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nix-build-cache');
}

/**
 * Whether `store` is a directory outside the Nix build's own: one that must exist beforehand (in
 * the sandbox, creating it would create it in the build's private file system).
 */
function inNixBuildOutside(store: string, env: NodeJS.ProcessEnv): boolean {
  if (!env.NIX_BUILD_TOP || !isDirectoryStore(store)) return false;
  const path = relative(resolve(env.NIX_BUILD_TOP), resolve(fileStorePath(store)));
  return path.startsWith('..') || isAbsolute(path);
}

/**
 * Where the events for stats go: beside the archives of a directory store (every build user that
 * shares it counts), else a file of the user's. `explicit`: given by the user, so failing to write
 * it is worth a warning; the default is skipped quietly where it cannot be written (a sandbox).
 */
function eventsFile(options: Gathered, env: NodeJS.ProcessEnv): { file: string; explicit: boolean } | undefined {
  const given = options.string('events');
  if (given === 'off') return undefined;
  if (given !== undefined) return { file: given, explicit: true };
  const store = storeLocation(options, env);
  if (isDirectoryStore(store)) return { file: join(fileStorePath(store), '.events.jsonl'), explicit: false };
  // No home (HOME unset, as in tests and some daemons): no file of the user's to put them in.
  const state = env.XDG_STATE_HOME || (env.HOME ? join(env.HOME, '.local', 'state') : undefined);
  return state === undefined ? undefined : { file: join(state, 'nix-build-cache', 'events.jsonl'), explicit: false };
}

/** Appends the run's event; never fails the run. */
async function record(report: RestoreReport | SaveReport, options: Gathered, env: NodeJS.ProcessEnv, onWarning: (message: string) => void): Promise<void> {
  const where = eventsFile(options, env);
  if (!where) return;
  const { appendEvent, eventOf } = await import('./events.js');
  const event = eventOf(report);
  if (!event) return;
  try {
    // Save would make the store's directory too (not in a Nix build: see FileStore's createDir);
    // the first build's miss counts.
    if (!where.explicit && !inNixBuildOutside(dirname(where.file), env)) await mkdir(dirname(where.file), { recursive: true });
    await appendEvent(where.file, event);
  } catch (error) {
    if (where.explicit) onWarning(`cannot record the event for stats in ${where.file}: ${describeError(error)}`);
  }
}

async function runStats(options: Gathered, env: NodeJS.ProcessEnv, started: number): Promise<StatsReport> {
  const since = options.string('since');
  const sinceMs = since === undefined ? undefined : parseDuration(since);
  if (since !== undefined && sinceMs === undefined) options.problems.push(`--since: use a number and s, m, h, d or w (got ${JSON.stringify(since)})`);
  const where = eventsFile(options, env);
  if (!where) options.problems.push('--events: no file to read (off, or no $HOME for the default); give the file the events are in');
  if (options.problems.length > 0) throw new ConfigError(options.problems);
  const name = options.string('cache-name');
  return (await import('./events.js')).readStats({
    events: where!.file, now: started, ...(sinceMs === undefined ? {} : { sinceMs }), ...(name === undefined ? {} : { cacheName: name }),
  });
}

function buildOptions(command: Command, options: Gathered, values: Values, env: NodeJS.ProcessEnv): RestoreOptions {
  const stateDir = options.string('state-dir') ?? (env.NIX_BUILD_TOP ? join(env.NIX_BUILD_TOP, '.nix-build-cache') : undefined);
  const threads = options.number('threads');
  const store = storeLocation(options, env);
  const result: RestoreOptions = {
    store: inNixBuildOutside(store, env) ? new FileStore(fileStorePath(store), { createDir: false }) : store,
    s3: s3Settings(options, values, env),
    cacheName: options.string('cache-name') ?? '',
    cacheDirs: (options.get('cache-dir') as string[] | undefined) ?? [],
    fallbacks: (options.get('fallback') as string[] | undefined) ?? [],
    strict: options.get('strict') === true,
    explain: command === 'restore' && options.get('explain') === true,
  };
  if (stateDir !== undefined) result.stateDir = stateDir;
  const root = options.string('root');
  if (root !== undefined) {
    result.root = root;
    const problem = notADirectory(root);
    if (problem) options.problems.push(`--root: ${problem}`);
  }
  if (options.string('compression') !== undefined) result.compression = options.string('compression') as RestoreOptions['compression'];
  if (options.string('salt') !== undefined) result.salt = options.string('salt')!;
  if (threads !== undefined) result.threads = threads;
  const deadline = options.number('deadline', 1000);
  if (deadline !== undefined) result.deadlineMs = deadline;
  const maxBytes = options.size('max-unpacked');
  const maxEntries = options.number('max-entries');
  if (maxBytes !== undefined || maxEntries !== undefined) {
    result.limits = { ...(maxBytes === undefined ? {} : { maxBytes }), ...(maxEntries === undefined ? {} : { maxEntries }) };
  }
  return result;
}

/** Why `path` cannot be a root to work in, or undefined when it is a directory. */
function notADirectory(path: string): string | undefined {
  try {
    return statSync(path).isDirectory() ? undefined : `${path} is not a directory`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `no such directory ${path}` : `cannot use ${path} (${code ?? describeError(error)})`;
  }
}

/**
 * Progress on stderr: on a terminal one line rewritten at most ten times a second; elsewhere (Nix
 * logs, CI) one plain line as each phase of restore or save ends.
 */
function progress(quiet: boolean, command: Command): { update: ProgressListener | undefined; clear: () => void } {
  const stream = process.stderr;
  if (quiet) return { update: undefined, clear: () => {} };
  if (!stream.isTTY) {
    if (command !== 'restore' && command !== 'save') return { update: undefined, clear: () => {} };
    return { update: (p) => { if (p.done) stream.write(`nix-build-cache ${command}: ${phaseLine(p)}\n`); }, clear: () => {} };
  }
  let last = 0;
  let shown = false;
  return {
    update: (p) => {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      // Never wider than the terminal: a wrapped line cannot be rewritten.
      stream.write(`\r\x1b[K${`nix-build-cache ${command}: ${progressLine(p)}`.slice(0, Math.max(20, (stream.columns || 80) - 1))}`);
    },
    clear: () => {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}

function printExplain(report: RestoreReport, out: NodeJS.WritableStream): void {
  for (const attempt of report.attempts) out.write(`# tried ${attempt.name}, key ${attempt.key}: ${attempt.result}, ${whyAttempt(attempt)}\n`);
  if (report.attempts.length === 0) out.write('# tried nothing: restore failed before the store was read (see the warning)\n');
  for (const line of report.explain ?? []) {
    out.write(`${line.status.padEnd(9)}  ${line.path}${line.reason ? `  (${line.reason})` : ''}\n`);
  }
}

function listed(caches: readonly CacheObject[]): ListedCache[] {
  return caches.map(({ name, key, size, modified, lastRestored }) =>
    ({ name, key, size, modified: modified.toISOString(), ...(lastRestored ? { lastRestored: lastRestored.toISOString() } : {}) }));
}

function age(iso: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return seconds < 3600 ? `${Math.round(seconds / 60)}m` : seconds < 172800 ? `${Math.round(seconds / 3600)}h` : `${Math.round(seconds / 86400)}d`;
}

function printCaches(caches: readonly ListedCache[], out: NodeJS.WritableStream, verb = ''): void {
  const rows = caches.map((c) => [c.name, `${(c.size / 1e6).toFixed(1)} MB`, age(c.modified), c.key]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length), ['NAME', 'SIZE', 'AGE'][i]!.length));
  const line = (cells: string[]) => `${verb}${cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ')}\n`;
  if (rows.length > 0 && verb === '') out.write(line(['NAME', 'SIZE', 'AGE', 'KEY']));
  for (const row of rows) out.write(line(row));
}

async function execute(command: Command, values: Values, positionals: string[], env: NodeJS.ProcessEnv,
  hooks: { onWarning: (message: string) => void; onProgress?: ProgressListener | undefined }): Promise<Report> {
  const options = new Gathered(values, env);
  const built = buildOptions(command, options, values, env);
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  if (command === 'stats') return runStats(options, env, started);
  if (command === 'ls' || command === 'prune') {
    const olderThan = options.string('older-than');
    const olderThanMs = olderThan === undefined ? undefined : parseDuration(olderThan);
    if (olderThan !== undefined && olderThanMs === undefined) options.problems.push(`--older-than: use a number and s, m, h, d or w (got ${JSON.stringify(olderThan)})`);
    const keep = options.number('keep');
    const maxSize = command === 'prune' ? options.size('max-size') : undefined;
    if (command === 'prune' && olderThan === undefined && keep === undefined && maxSize === undefined && options.problems.length === 0) {
      options.problems.push('prune: give --older-than, --keep, --max-size or several');
    }
    if (options.problems.length > 0) throw new ConfigError(options.problems);
    const store = { store: built.store, s3: built.s3! };
    const location = typeof built.store === 'string' ? built.store : built.store.location;
    const { listCaches, pruneCaches } = await import('./manage.js');
    if (command === 'ls') return { command, store: location, caches: listed(await listCaches(store)), seconds: seconds() };
    const dryRun = values['dry-run'] === true;
    const deleted = await pruneCaches({ ...store, dryRun, ...(olderThanMs === undefined ? {} : { olderThanMs }), ...(keep === undefined ? {} : { keep }), ...(maxSize === undefined ? {} : { maxSize }) });
    return { command, store: location, dryRun, deleted: listed(deleted), seconds: seconds() };
  }
  if (command === 'settle') {
    if (options.problems.length > 0) throw new ConfigError(options.problems);
    const given = options.get('cache-dir') as string[] | undefined;
    return (await import('./settle.js')).settle({
      strict: built.strict === true, onWarning: hooks.onWarning, ...(given ? { cacheDirs: given } : {}),
      ...(built.root === undefined ? {} : { root: built.root }), ...(built.stateDir === undefined ? {} : { stateDir: built.stateDir }),
    });
  }
  if (command !== 'hash') {
    try {
      resolveOptions(built);
    } catch (error) {
      if (error instanceof ConfigError) throw new ConfigError([...options.problems, ...error.problems]);
      throw error;
    }
  }
  if (options.problems.length > 0) throw new ConfigError(options.problems);
  if (command === 'hash') {
    if (positionals.length > 1) throw new ConfigError([`DIR: at most one directory (got ${positionals.length})`]);
    const root = positionals[0] ?? '.';
    const problem = notADirectory(root);
    if (problem) throw new ConfigError([`DIR: ${problem}`]);
    const [{ hashTree }, { hasherName }] = await Promise.all([import('./hash.js'), import('./native-hasher.js')]);
    const { onProgress } = hooks;
    const tree = await hashTree(root, {
      ...(built.threads === undefined ? {} : { threads: built.threads }),
      ...(onProgress ? { onProgress: (files: number, bytes: number) => onProgress({ phase: 'hash', files, bytes, done: false, seconds: seconds() }) } : {}),
    });
    process.stdout.write(formatManifest(tree.digests));
    tree.problems.forEach(hooks.onWarning);
    return { command, root, hasher: hasherName(), files: tree.digests.size, unhashable: tree.unhashable.length, bytes: tree.bytes, warnings: tree.problems, seconds: seconds() };
  }
  const withHooks = { ...built, onWarning: hooks.onWarning, ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}) };
  if (command === 'restore' && values['lookup-only'] === true) return (await import('./lookup.js')).lookup(withHooks);
  if (command === 'restore') return (await import('./restore.js')).restore(withHooks);
  return (await import('./save.js')).save({ ...withHooks, buildFailed: values['build-failed'] === true, allowPartial: options.get('allow-partial') === true });
}

/** Runs the daemon in the foreground (for systemd) until SIGTERM or SIGINT. */
async function runServe(values: Values, env: NodeJS.ProcessEnv): Promise<number> {
  const options = new Gathered(values, env);
  const built = buildOptions('serve', options, values, env);
  const socket = options.string('socket');
  if (socket === undefined) options.problems.push('--socket: required');
  const maxDisk = options.size('max-disk');
  const maxObjectSize = options.size('max-object-size');
  const location = typeof built.store === 'string' ? built.store : '';
  if (location.startsWith('unix://')) options.problems.push('--store: the upstream store of a daemon is a directory or s3://, not another daemon');
  if (options.problems.length > 0) {
    process.stderr.write(`nix-build-cache serve: invalid options:\n${options.problems.map((p) => `  ${p}`).join('\n')}\n`);
    return 2;
  }
  const [{ serve }, { writePolicy }, { openStore }] = await Promise.all([import('./serve/daemon.js'), import('./serve/peer.js'), import('./stores/index.js')]);
  const log = (line: string) => process.stderr.write(`nix-build-cache serve: ${line}\n`);
  const writerList = values.writer as string[] | undefined;
  let daemon;
  try {
    const writers = writerList?.length ? await writePolicy(writerList) : undefined;
    const upstream = await openStore(built.store, built.s3);
    const diskCache = options.string('disk-cache');
    const group = options.string('socket-group');
    daemon = await serve({
      socket: socket!, upstream, log, readOnly: values['read-only'] === true,
      ...(diskCache === undefined ? {} : { diskCache }), ...(maxDisk === undefined ? {} : { maxDisk }),
      ...(maxObjectSize === undefined ? {} : { maxObjectSize }), ...(group === undefined ? {} : { socketGroup: group }),
      ...(writers ? { writers } : {}),
    });
    const policy = values['read-only'] ? ', read-only' : writers ? `, writes from ${writerList!.join(' ')} only` : '';
    log(`listening on unix://${socket} for ${upstream.location}${policy}${diskCache ? `, disk cache ${diskCache}` : ''}`);
  } catch (error) {
    process.stderr.write(`nix-build-cache serve: error: ${describeError(error)}\n`);
    return 1;
  }
  await new Promise((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
  await daemon.close();
  log('stopped');
  return 0;
}

/** Options of every command, for telling a misplaced option from an unknown one. */
function commandsOf(name: string): readonly Command[] {
  return OPTIONS[name]?.commands ?? [];
}

/** The one line for an argument that is no option of `command`, or undefined when all are known. */
function unknownOption(command: Command, args: readonly string[]): string | undefined {
  const names = Object.keys(OPTIONS).filter((name) => commandsOf(name).includes(command));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return undefined;
    if (arg === '-h' || arg === '-' || !arg.startsWith('-')) continue;
    const name = arg.replace(/^--?/, '').split('=')[0]!;
    if (names.includes(name)) {
      // The next argument is this option's value, whatever it looks like.
      if (OPTIONS[name]!.type === 'string' && !arg.includes('=')) i++;
      continue;
    }
    const elsewhere = commandsOf(name);
    if (elsewhere.length > 0) return `--${name} is not an option of ${command} (it is one of ${elsewhere.join(', ')}); run 'nix-build-cache ${command} --help'`;
    const guess = nearest(name, names);
    return `unknown option ${arg.split('=')[0]}${guess ? `; did you mean --${guess}?` : ''} (run 'nix-build-cache ${command} --help')`;
  }
  return undefined;
}

/** The one line for a first argument that is not a command. */
function unknownCommand(first: string): string {
  const name = first.replace(/^--?/, '').split('=')[0]!;
  if (first.startsWith('-')) {
    const where = commandsOf(name).length > 0 ? `; options come after the command, as in 'nix-build-cache ${commandsOf(name)[0]} ${first.split('=')[0]}'` : '';
    return `unknown option ${first.split('=')[0]}${where} (run 'nix-build-cache --help')`;
  }
  const guess = nearest(first, Object.keys(COMMANDS));
  return `unknown command ${JSON.stringify(first)}${guess ? `; did you mean ${guess}?` : ''} (run 'nix-build-cache --help')`;
}

/** The library names fields as in its options object; the command line says the flag. */
const FLAGS: Record<string, string> = {
  store: 'store', cacheName: 'cache-name', fallbacks: 'fallback', cacheDirs: 'cache-dir', compression: 'compression', salt: 'salt',
  threads: 'threads', 's3.endpoint': 'endpoint', 's3.partSize': 'part-size', 's3.queueSize': 'queue-size', 's3.connectTimeout': 'connect-timeout',
  's3.socketTimeout': 'socket-timeout', 's3.maxAttempts': 'max-attempts', 'limits.maxBytes': 'max-unpacked', 'limits.maxEntries': 'max-entries',
  keep: 'keep', olderThan: 'older-than', maxSize: 'max-size',
};

function flagProblem(problem: string): string {
  return problem.replace(/^([\w.]+)(\[\d+\])?:/, (whole, field: string) => (FLAGS[field] ? `--${FLAGS[field]}:` : whole));
}

async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-V') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return first === undefined ? 2 : 0;
  }
  if (!(first in COMMANDS)) {
    process.stderr.write(`nix-build-cache: ${unknownCommand(first)}\n`);
    return 2;
  }
  const command = first as Command;
  const fail = (line: string) => {
    process.stderr.write(`nix-build-cache ${command}: ${line}\n`);
    return 2;
  };
  const unknown = unknownOption(command, rest);
  if (unknown) return fail(unknown);
  const specs = Object.fromEntries(Object.entries(OPTIONS).filter(([, spec]) => spec.commands.includes(command))
    .map(([name, spec]) => [name, { type: spec.type, ...(spec.multiple ? { multiple: true } : {}), ...(name === 'help' ? { short: 'h' } : {}) }]));
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: specs, allowPositionals: command === 'hash', strict: true });
  } catch (error) {
    // parseArgs explains at length; the first sentence is the problem.
    return fail(`${describeError(error).replace(/^ERR_PARSE_ARGS_\w+: /, '').split(/\.( |$)/)[0]} (run 'nix-build-cache ${command} --help')`);
  }
  const values = parsed.values as Values;
  if (values.help) {
    process.stdout.write(`${usage(command)}\n`);
    return 0;
  }
  if (command === 'serve') return runServe(values, env);
  const gathered = new Gathered(values, env);
  const quiet = gathered.get('quiet') === true;
  const json = gathered.string('json');
  if (json === '-' && command === 'hash') return fail("--json: hash prints the manifest on stdout; write the report to a file");
  // With `--json -` the report is all that goes to stdout: listings go to stderr.
  const out = json === '-' ? process.stderr : process.stdout;
  const bar = progress(quiet, command);
  const onWarning = (message: string) => {
    bar.clear();
    process.stderr.write(`nix-build-cache: warning: ${message}\n`);
  };
  let report: Report;
  try {
    report = await execute(command, values, parsed.positionals, env, { onWarning, onProgress: bar.update });
    bar.clear();
  } catch (error) {
    bar.clear();
    if (error instanceof ConfigError) {
      process.stderr.write(error.problems.map((problem) => `nix-build-cache ${command}: ${flagProblem(problem)}\n`).join(''));
      return 2;
    }
    process.stderr.write(`nix-build-cache ${command}: error: ${describeError(error)}\n`);
    return 1;
  }
  if (report.command === 'restore' && gathered.get('explain') === true) printExplain(report, out);
  if (report.command === 'ls') printCaches(report.caches, out);
  if (report.command === 'stats') out.write((await import('./events.js')).statsTable(report));
  if (report.command === 'restore' || report.command === 'save') await record(report, gathered, env, onWarning);
  if (report.command === 'prune') printCaches(report.deleted, out, report.dryRun ? 'would delete  ' : 'deleted  ');
  if (json === '-') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (json) {
    await writeFile(json, `${JSON.stringify(report, null, 2)}\n`).catch((error: unknown) =>
      onWarning(`cannot write the report to ${json}: ${describeError(error)}`));
  }
  if (!quiet) process.stderr.write(`nix-build-cache ${summaryLine(report)}\n`);
  if (report.command === 'restore') {
    if (env.GITHUB_OUTPUT) await writeGithubOutput(env.GITHUB_OUTPUT, report, onWarning);
    if (report.result === 'miss' && gathered.get('fail-on-miss') === true) {
      process.stderr.write(`nix-build-cache restore: no cache ${report.lookupOnly ? 'found' : 'restored'} (--fail-on-miss)\n`);
      return 1;
    }
  }
  return 0;
}

/** The step outputs of actions/cache (cache-hit: an exact hit only) plus the result and key. */
async function writeGithubOutput(file: string, report: RestoreReport, onWarning: (message: string) => void): Promise<void> {
  const lines = [`cache-hit=${report.result === 'hit'}`, `cache-result=${report.result}`, `cache-matched-key=${report.matchedKey ?? ''}`];
  await appendFile(file, `${lines.join('\n')}\n`).catch((error: unknown) => onWarning(`cannot write the GitHub step outputs to ${file}: ${describeError(error)}`));
}

// The AWS SDK's version is pinned; its notice about future Node versions is noise in build logs.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.exitCode = await run(process.argv.slice(2), process.env);
