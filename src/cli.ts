#!/usr/bin/env node
// The only module that touches argv, the environment, stdout/stderr and the exit code.
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatManifest } from './core/manifest.js';
import { ConfigError, describeError } from './errors.js';
import { hashTree } from './index.js';
import type { RestoreOptions } from './options.js';
import { summaryLine, type Report, type RestoreReport } from './report.js';
import { restore } from './restore.js';
import { save } from './save.js';
import { VERSION } from './version.js';

type Command = 'restore' | 'save' | 'hash';
const COMMANDS: Record<Command, string> = {
  restore: 'hash the source tree, fetch the newest usable cache and set times so that the build redoes what changed (run in preConfigure, from the source root)',
  save: 'archive the cache dirs with the manifest recorded by restore and store it under the cache name (run in preInstall)',
  hash: 'print the MD5 manifest of DIR (default: the current directory) in md5sum format',
};

interface Spec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  value?: string;
  env?: string;
  fallback: string;
  help: string;
  commands: readonly Command[];
}

const BUILD = ['restore', 'save'] as const;
const OPTIONS: Record<string, Spec> = {
  store: { type: 'string', value: 'DIR|URL', env: 'NBC_STORE', fallback: '$XDG_CACHE_HOME/nix-build-cache (or ~/.cache/nix-build-cache)', help: 'where archives are kept: a directory or file:///DIR', commands: BUILD },
  'cache-name': { type: 'string', value: 'NAME', env: 'NBC_CACHE_NAME', fallback: 'required', help: "this build's cache, e.g. REPO/BRANCH", commands: BUILD },
  fallback: { type: 'string', multiple: true, value: 'NAME', env: 'NBC_FALLBACKS', fallback: 'none', help: 'cache to try when --cache-name has none; repeatable, tried in order (env: comma-separated)', commands: ['restore'] },
  'cache-dir': { type: 'string', multiple: true, value: 'DIR', env: 'NBC_CACHE_DIRS', fallback: 'required', help: 'directory (relative to the source root) kept between builds; repeatable; "." is the whole tree (env: comma-separated)', commands: BUILD },
  'state-dir': { type: 'string', value: 'DIR', env: 'NBC_STATE_DIR', fallback: '$NIX_BUILD_TOP/.nix-build-cache, else one per source root in $TMPDIR', help: 'where restore records the manifest for save', commands: BUILD },
  root: { type: 'string', value: 'DIR', env: 'NBC_ROOT', fallback: 'the current directory', help: 'the source root', commands: ['restore'] },
  compression: { type: 'string', value: 'gzip|none', env: 'NBC_COMPRESSION', fallback: 'gzip', help: 'archive compression (part of the key; reading detects it)', commands: BUILD },
  salt: { type: 'string', value: 'TEXT', env: 'NBC_SALT', fallback: 'none', help: 'anything that makes caches incompatible, e.g. a toolchain fingerprint (part of the key)', commands: BUILD },
  explain: { type: 'boolean', fallback: 'off', help: 'print how the plan classified each file: unchanged, changed, new, removed, restored, skipped', commands: ['restore'] },
  threads: { type: 'string', value: 'N', env: 'NBC_THREADS', fallback: 'number of cores', help: 'worker threads for hashing and setting times', commands: ['restore', 'save', 'hash'] },
  json: { type: 'string', value: 'FILE', env: 'NBC_JSON', fallback: 'none', help: "write the run's report as JSON to FILE", commands: ['restore', 'save', 'hash'] },
  strict: { type: 'boolean', env: 'NBC_STRICT', fallback: 'off', help: 'fail (exit 1) on any cache problem instead of warning and building on', commands: BUILD },
  quiet: { type: 'boolean', env: 'NBC_QUIET', fallback: 'off', help: 'print warnings only: no progress, no summary line', commands: ['restore', 'save', 'hash'] },
  help: { type: 'boolean', fallback: '', help: 'show this help', commands: ['restore', 'save', 'hash'] },
};

function usage(command?: Command): string {
  if (!command) {
    return [`nix-build-cache ${VERSION}: incremental Nix builds from a cache of intermediate files`, '',
      'Usage: nix-build-cache <command> [options]', '', 'Commands:',
      ...Object.entries(COMMANDS).map(([name, text]) => `  ${name.padEnd(8)} ${text}`), '',
      "Run 'nix-build-cache <command> --help' for its options. 'nix-build-cache --version' prints the version.",
      'Exit status: 0 also when the cache is unusable (a warning says why); 2 for invalid options; 1 with --strict.'].join('\n');
  }
  const lines = Object.entries(OPTIONS).filter(([, spec]) => spec.commands.includes(command)).map(([name, spec]) => {
    const flag = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
    const extra = [spec.fallback && `default: ${spec.fallback}`, spec.env && `env: ${spec.env}`].filter(Boolean).join('; ');
    return `  ${flag.padEnd(24)} ${spec.help}${extra ? ` [${extra}]` : ''}`;
  });
  return [`Usage: nix-build-cache ${command} [options]${command === 'hash' ? ' [DIR]' : ''}`, '', COMMANDS[command], '', 'Options:', ...lines].join('\n');
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);

/** Options from the command line, else the environment, as the library takes them. */
function gather(command: Command, values: Record<string, string | boolean | string[] | undefined>, env: NodeJS.ProcessEnv) {
  const get = (name: string): string | boolean | string[] | undefined => {
    const spec = OPTIONS[name]!;
    if (values[name] !== undefined) return values[name];
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (fromEnv === undefined || fromEnv === '') return undefined;
    if (spec.type === 'boolean') return TRUE.has(fromEnv.toLowerCase());
    return spec.multiple ? fromEnv.split(/[,\s]+/).filter(Boolean) : fromEnv;
  };
  const str = (name: string) => get(name) as string | undefined;
  const threads = str('threads');
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const stateDir = str('state-dir') ?? (env.NIX_BUILD_TOP ? join(env.NIX_BUILD_TOP, '.nix-build-cache') : undefined);
  const options: RestoreOptions = {
    store: str('store') ?? join(cacheHome, 'nix-build-cache'),
    cacheName: str('cache-name') ?? '',
    cacheDirs: (get('cache-dir') as string[] | undefined) ?? [],
    fallbacks: (get('fallback') as string[] | undefined) ?? [],
    ...(stateDir === undefined ? {} : { stateDir }),
    ...(str('root') === undefined ? {} : { root: str('root')! }),
    ...(str('compression') === undefined ? {} : { compression: str('compression') as RestoreOptions['compression'] }),
    ...(str('salt') === undefined ? {} : { salt: str('salt')! }),
    ...(threads === undefined ? {} : { threads: /^\d+$/.test(threads) ? Number(threads) : NaN }),
    strict: get('strict') === true,
    explain: command === 'restore' && get('explain') === true,
  };
  return { options, quiet: get('quiet') === true, json: str('json') };
}

function progress(quiet: boolean) {
  if (quiet || !process.stderr.isTTY) return { update: undefined, clear: () => {} };
  let last = 0;
  return {
    update: (files: number) => {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      process.stderr.write(`\rnix-build-cache: hashing… ${files} files`);
    },
    clear: () => { if (last) process.stderr.write('\r\x1b[K'); },
  };
}

function printExplain(report: RestoreReport): void {
  for (const attempt of report.attempts) {
    process.stdout.write(`# ${attempt.name}: ${attempt.result}${attempt.reason ? ` (${attempt.reason})` : ''}\n`);
  }
  for (const line of report.explain ?? []) {
    process.stdout.write(`${line.status.padEnd(9)}  ${line.path}${line.reason ? `  (${line.reason})` : ''}\n`);
  }
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
    process.stderr.write(`nix-build-cache: unknown command ${JSON.stringify(first)}\n\n${usage()}\n`);
    return 2;
  }
  const command = first as Command;
  const specs = Object.fromEntries(Object.entries(OPTIONS).filter(([, spec]) => spec.commands.includes(command))
    .map(([name, spec]) => [name, { type: spec.type, ...(spec.multiple ? { multiple: true } : {}), ...(name === 'help' ? { short: 'h' } : {}) }]));
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: specs, allowPositionals: command === 'hash', strict: true });
  } catch (error) {
    process.stderr.write(`nix-build-cache ${command}: ${describeError(error)}\n\n${usage(command)}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${usage(command)}\n`);
    return 0;
  }
  const { options, quiet, json } = gather(command, parsed.values as Record<string, string | boolean | string[] | undefined>, env);
  const bar = progress(quiet);
  const onWarning = (message: string) => {
    bar.clear();
    process.stderr.write(`nix-build-cache: warning: ${message}\n`);
  };
  let report: Report;
  try {
    if (command === 'hash') {
      if (parsed.positionals.length > 1) throw new ConfigError([`DIR: at most one directory (got ${parsed.positionals.length})`]);
      const started = Date.now();
      const root = parsed.positionals[0] ?? '.';
      const tree = await hashTree(root, { ...(options.threads === undefined ? {} : { threads: options.threads }), onProgress: bar.update });
      bar.clear();
      process.stdout.write(formatManifest(tree.digests));
      tree.problems.forEach(onWarning);
      report = {
        command, root, files: tree.digests.size, unhashable: tree.unhashable.length, bytes: tree.bytes,
        warnings: tree.problems, seconds: (Date.now() - started) / 1000,
      };
    } else {
      const withHooks = { ...options, onWarning, ...(bar.update ? { onProgress: bar.update } : {}) };
      report = command === 'restore' ? await restore(withHooks) : await save(withHooks);
      bar.clear();
      if (report.command === 'restore' && options.explain) printExplain(report);
    }
  } catch (error) {
    bar.clear();
    if (error instanceof ConfigError) {
      process.stderr.write(`nix-build-cache ${command}: invalid options:\n${error.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 2;
    }
    process.stderr.write(`nix-build-cache ${command}: error: ${describeError(error)}\n`);
    return 1;
  }
  if (json) {
    await writeFile(json, `${JSON.stringify(report, null, 2)}\n`).catch((error: unknown) =>
      onWarning(`cannot write the report to ${json}: ${describeError(error)}`));
  }
  if (!quiet) process.stderr.write(`nix-build-cache ${summaryLine(report)}\n`);
  return 0;
}

process.exitCode = await run(process.argv.slice(2), process.env);
