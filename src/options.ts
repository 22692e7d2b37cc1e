import { resolve } from 'node:path';
import {
  checkCacheDirs, checkCacheName, checkChoice, checkPositiveInteger, COMPRESSIONS, DEFAULT_LIMITS, type Compression, type ExtractLimits,
} from './core/config.js';
import { ConfigError } from './core/errors.js';
import type { ProgressListener } from './progress.js';
import { checkStoreLocation, type S3Settings, type Store } from './stores/index.js';

/** Options shared by restore and save. */
export interface CacheOptions {
  /** Where archives are kept: a directory, a file:// URL, s3://BUCKET[/PREFIX], or a Store object. */
  store: string | Store;
  /** Endpoint, region, credentials, part size and timeouts for s3:// stores. */
  s3?: S3Settings;
  /** This build's cache name, such as "<repository>/<branch>". */
  cacheName: string;
  /** Directories relative to the source root whose files outlive the build; "." is the whole tree. */
  cacheDirs: readonly string[];
  /** Source root. Default: the current directory for restore, the recorded root for save. */
  root?: string;
  /** Where restore records the source manifest for save. Default: one per root in the temp dir. */
  stateDir?: string;
  /** Archive compression. Default "zstd" (the zstd program). Reading detects the compression from the data. */
  compression?: Compression;
  /** Anything else that makes archives incompatible (a toolchain fingerprint); part of the key. */
  salt?: string;
  /**
   * What a cache is in the store: "archive" (one tar per save, the default) or "blobs" (one blob per
   * artifact, new blobs packed per save, a manifest written last: saves and restores move what changed).
   */
  layout?: Layout;
  /** The local blob cache of the blob layout, size-capped. Default $XDG_CACHE_HOME/nix-build-cache/blobs. */
  blobCache?: string;
  /** Throw on any cache problem instead of warning and going on. Default false. */
  strict?: boolean;
  /** Worker threads for hashing and setting times. Default: the number of cores. */
  threads?: number;
  /**
   * Milliseconds the work with the store may take (restore: fetching and unpacking, every name
   * tried; save: packing and uploading) before it is given up with a warning. Default: 10 s plus
   * 1 s per MB moved so far, so only a store slower than 1 MB/s on average is given up on.
   */
  deadlineMs?: number;
  signal?: AbortSignal;
  /** Told each warning as it happens; the report lists them too. */
  onWarning?: (message: string) => void;
  /** Told how each phase goes: hash, fetch, unpack, apply (restore); pack, upload (save). */
  onProgress?: ProgressListener;
}

export interface RestoreOptions extends CacheOptions {
  /** Names tried in order when `cacheName` has no archive, such as the main branch's. Default []. */
  fallbacks?: readonly string[];
  /** Put a per-file account of the plan in the report. Default false. */
  explain?: boolean;
  /** Refuse archives that unpack to more bytes or entries than this. Default DEFAULT_LIMITS. */
  limits?: Partial<ExtractLimits>;
}

export interface SaveOptions extends CacheOptions {
  /** The build failed (save-on-failure): noted in the report and in meta.json. Default false. */
  buildFailed?: boolean;
  /**
   * Save the cache dirs that can be saved when others cannot (missing, not a directory, reached
   * through a symlink). Default false: such a save is skipped, keeping the whole archive stored before.
   */
  allowPartial?: boolean;
}

export const LAYOUTS = ['archive', 'blobs'] as const;
export type Layout = (typeof LAYOUTS)[number];

const DEFAULTS = { compression: 'zstd', layout: 'archive', strict: false, fallbacks: [], explain: false } as const;

export interface ResolvedOptions extends Readonly<Required<Omit<RestoreOptions,
  'root' | 'stateDir' | 'salt' | 'blobCache' | 'threads' | 'deadlineMs' | 'signal' | 'onWarning' | 'onProgress' | 's3' | 'limits'>>> {
  readonly limits: ExtractLimits;
  readonly s3: S3Settings;
  readonly cacheDirs: readonly string[];
  readonly root: string | undefined;
  readonly stateDir: string | undefined;
  readonly salt: string | undefined;
  readonly blobCache: string | undefined;
  readonly threads: number | undefined;
  readonly deadlineMs: number | undefined;
  readonly signal: AbortSignal | undefined;
  readonly onWarning: ((message: string) => void) | undefined;
  readonly onProgress: ProgressListener | undefined;
}

const MIN_PART_SIZE = 5 << 20;

function checkS3Settings(s3: S3Settings): (string | undefined)[] {
  const positive = (field: keyof S3Settings) =>
    s3[field] === undefined ? undefined : checkPositiveInteger(`s3.${field}`, s3[field]);
  let endpoint: string | undefined;
  if (s3.endpoint !== undefined) {
    let protocol = '';
    try {
      protocol = new URL(s3.endpoint).protocol;
    } catch { /* reported below */ }
    if (protocol !== 'http:' && protocol !== 'https:') endpoint = `s3.endpoint: must be an http(s) URL (got ${JSON.stringify(s3.endpoint)})`;
  }
  return [
    endpoint,
    positive('queueSize'), positive('connectTimeout'), positive('socketTimeout'), positive('maxAttempts'),
    s3.partSize === undefined || (Number.isInteger(s3.partSize) && s3.partSize >= MIN_PART_SIZE) ? undefined
      : `s3.partSize: must be at least 5 MiB, S3's minimum (got ${s3.partSize})`,
  ];
}

/** Fills defaults and checks every field; throws one ConfigError listing every problem. */
export function resolveOptions(options: RestoreOptions): ResolvedOptions {
  const fallbacks = options.fallbacks ?? DEFAULTS.fallbacks;
  const { dirs, problems } = checkCacheDirs('cacheDirs', options.cacheDirs);
  problems.unshift(...[
    checkStoreLocation(options.store),
    checkCacheName('cacheName', options.cacheName),
    ...fallbacks.map((name, i) => checkCacheName(`fallbacks[${i}]`, name)),
    checkChoice('compression', options.compression ?? DEFAULTS.compression, COMPRESSIONS),
    checkChoice('layout', options.layout ?? DEFAULTS.layout, LAYOUTS),
    options.threads === undefined ? undefined : checkPositiveInteger('threads', options.threads),
    options.deadlineMs === undefined ? undefined : checkPositiveInteger('deadlineMs', options.deadlineMs),
    options.salt === undefined || typeof options.salt === 'string' ? undefined : `salt: must be a string (got ${typeof options.salt})`,
    ...checkS3Settings(options.s3 ?? {}),
    options.limits?.maxBytes === undefined ? undefined : checkPositiveInteger('limits.maxBytes', options.limits.maxBytes),
    options.limits?.maxEntries === undefined ? undefined : checkPositiveInteger('limits.maxEntries', options.limits.maxEntries),
  ].filter((problem): problem is string => problem !== undefined));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    store: options.store,
    s3: Object.freeze({ ...options.s3 }),
    cacheName: options.cacheName,
    fallbacks: Object.freeze([...fallbacks]),
    cacheDirs: Object.freeze(dirs),
    root: options.root === undefined ? undefined : resolve(options.root),
    stateDir: options.stateDir === undefined ? undefined : resolve(options.stateDir),
    compression: options.compression ?? DEFAULTS.compression,
    salt: options.salt,
    layout: options.layout ?? DEFAULTS.layout,
    blobCache: options.blobCache === undefined ? undefined : resolve(options.blobCache),
    strict: options.strict ?? DEFAULTS.strict,
    explain: options.explain ?? DEFAULTS.explain,
    limits: Object.freeze({ ...DEFAULT_LIMITS, ...options.limits }),
    threads: options.threads,
    deadlineMs: options.deadlineMs,
    signal: options.signal,
    onWarning: options.onWarning,
    onProgress: options.onProgress,
  });
}
