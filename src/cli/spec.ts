// The command line's grammar: the commands, every option with its help, default and environment
// variables, the usage texts, and the one-line answers to unknown options and commands.
import { nearest } from '../core/suggest.js';
import { VERSION } from '../version.js';

export type Command = 'restore' | 'settle' | 'save' | 'hash' | 'ls' | 'prune' | 'stats' | 'serve';

export const COMMANDS: Record<Command, string> = {
  restore: 'hash the source tree, fetch the newest usable cache and set times so that the build redoes what changed (run in preConfigure, from the source root)',
  settle: 'after configure: give restored files that configure rewrote with the same content their restored times back (run in postConfigure)',
  save: 'archive the cache dirs with the manifest recorded by restore and store it under the cache name (run in preInstall)',
  hash: 'print the MD5 manifest of DIR (default: the current directory) in md5sum format',
  ls: 'list the caches in the store (archives and blob-layout manifests): name, size, age, key; with blob-layout caches also their logical size and a total of logical against stored bytes',
  prune: 'delete caches by age, by total size (least recently restored first) and/or keeping the newest N per name, then garbage-collect the packs of the blob layout',
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

export const OPTIONS: Record<string, Spec> = {
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
  layout: { type: 'string', value: 'archive|blobs', env: ['NBC_LAYOUT'], fallback: 'archive', help: 'what a cache is in the store: one archive per save, or blobs (experimental: content-addressed, a save uploads only new files, a restore fetches only what the local blob cache lacks)', commands: BUILD },
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
  'older-than': { type: 'string', value: 'AGE', fallback: 'none', help: 'delete caches older than AGE (30m, 12h, 7d, 2w)', commands: ['prune'] },
  'max-size': { type: 'string', value: 'SIZE', fallback: 'none', help: 'then delete the least recently restored caches (by save time if never restored) until the store holds at most SIZE (a blob shared by caches counted once), as ccache max_size (K, M, G suffixes)', commands: ['prune'] },
  keep: { type: 'string', value: 'N', fallback: 'none', help: 'never delete the newest N caches of each cache name', commands: ['prune'] },
  'gc-grace': { type: 'string', value: 'AGE', fallback: '1h', help: 'blob layout: a pack no cache names is marked, and deleted by a later prune once marked for AGE (30m, 12h, 7d, 2w); below 1h only safe when no save runs meanwhile; alone: collect packs, delete no cache', commands: ['prune'] },
  'repack-below': { type: 'string', value: 'FRACTION', fallback: '0.5', help: 'blob layout: mark packs whose live bytes are below FRACTION of their size for repacking (saves upload their live blobs again, then the pack is collected); 0: never', commands: ['prune'] },
  'dry-run': { type: 'boolean', fallback: 'off', help: 'list what prune would delete (caches, packs, marks) and the bytes freed, delete nothing', commands: ['prune'] },
  threads: { type: 'string', value: 'N', env: ['NBC_THREADS'], fallback: 'number of cores', help: 'worker threads for hashing and setting times', commands: ['restore', 'save', 'hash'] },
  json: { type: 'string', value: 'FILE', env: ['NBC_JSON'], fallback: 'none', help: "write the run's report as JSON to FILE (-: to stdout, and listings to stderr)", commands: ALL },
  strict: { type: 'boolean', env: ['NBC_STRICT'], fallback: 'off', help: 'fail (exit 1) on any cache problem instead of warning and building on', commands: AFTER_RESTORE },
  quiet: { type: 'boolean', env: ['NBC_QUIET'], fallback: 'off', help: 'print warnings only: no progress, no summary line', commands: ALL },
  help: { type: 'boolean', fallback: '', help: 'show this help', commands: ALL },
};

export function usage(command?: Command): string {
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

/** Options of every command, for telling a misplaced option from an unknown one. */
function commandsOf(name: string): readonly Command[] {
  return OPTIONS[name]?.commands ?? [];
}

/** The one line for an argument that is no option of `command`, or undefined when all are known. */
export function unknownOption(command: Command, args: readonly string[]): string | undefined {
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
export function unknownCommand(first: string): string {
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
  keep: 'keep', olderThan: 'older-than', maxSize: 'max-size', gcGrace: 'gc-grace', repackBelow: 'repack-below',
};

export function flagProblem(problem: string): string {
  return problem.replace(/^([\w.]+)(\[\d+\])?:/, (whole, field: string) => (FLAGS[field] ? `--${FLAGS[field]}:` : whole));
}
