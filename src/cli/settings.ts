// From flags and environment variables to the library's options: values read once, every problem
// collected as `--flag: …`.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseCredentials, type Credentials } from '../core/credentials.js';
import { describeError } from '../core/errors.js';
import type { RestoreOptions } from '../options.js';
import { FileStore } from '../stores/file.js';
import { fileStorePath, isDirectoryStore, type S3Settings } from '../stores/index.js';
import { OPTIONS, type Command } from './spec.js';

const TRUE = new Set(['1', 'true', 'yes', 'on']);

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

export type Values = Record<string, string | boolean | string[] | undefined>;

/** Reads options from the command line, else the environment; collects problems as `--flag: …`. */
export class Gathered {
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

export function storeLocation(options: Gathered, env: NodeJS.ProcessEnv): string {
  return options.string('store') ?? join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nix-build-cache');
}

/**
 * Whether `store` is a directory outside the Nix build's own: one that must exist beforehand (in
 * the sandbox, creating it would create it in the build's private file system).
 */
export function inNixBuildOutside(store: string, env: NodeJS.ProcessEnv): boolean {
  if (!env.NIX_BUILD_TOP || !isDirectoryStore(store)) return false;
  const path = relative(resolve(env.NIX_BUILD_TOP), resolve(fileStorePath(store)));
  return path.startsWith('..') || isAbsolute(path);
}

export function buildOptions(command: Command, options: Gathered, values: Values, env: NodeJS.ProcessEnv): RestoreOptions {
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
  if (options.string('layout') !== undefined) result.layout = options.string('layout') as RestoreOptions['layout'];
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
export function notADirectory(path: string): string | undefined {
  try {
    return statSync(path).isDirectory() ? undefined : `${path} is not a directory`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `no such directory ${path}` : `cannot use ${path} (${code ?? describeError(error)})`;
  }
}
