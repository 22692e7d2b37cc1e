#!/usr/bin/env node
// The CLI's entry: it alone (with src/cli/) touches argv, the environment, stdout/stderr and the
// exit code. Each command loads only what it runs (tar, piscina, the AWS SDK): start-up is part of
// every build.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { listed, printCaches, printCollected, printExplain, progress, writeGithubOutput } from './cli/output.js';
import { buildOptions, Gathered, inNixBuildOutside, notADirectory, storeLocation, type Values } from './cli/settings.js';
import { COMMANDS, flagProblem, OPTIONS, unknownCommand, unknownOption, usage, type Command } from './cli/spec.js';
import { formatManifest } from './core/manifest.js';
import { parseDuration } from './core/prune.js';
import { ConfigError, describeError } from './core/errors.js';
import { resolveOptions } from './options.js';
import type { ProgressListener } from './progress.js';
import { summaryLine, type Report, type RestoreReport, type SaveReport, type StatsReport } from './report.js';
import { fileStorePath, isDirectoryStore } from './stores/index.js';
import { VERSION } from './version.js';

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
    const grace = options.string('gc-grace');
    // --gc-grace or --repack-below alone: collect packs, delete no cache.
    const collectOnly = grace !== undefined || options.string('repack-below') !== undefined;
    if (command === 'prune' && olderThan === undefined && keep === undefined && maxSize === undefined && !collectOnly && options.problems.length === 0) {
      options.problems.push('prune: give --older-than, --keep, --max-size or several (or --gc-grace alone to collect packs only)');
    }
    const gcGraceMs = grace === undefined ? undefined : parseDuration(grace);
    if (grace !== undefined && gcGraceMs === undefined) options.problems.push(`--gc-grace: use a number and s, m, h, d or w (got ${JSON.stringify(grace)})`);
    const below = options.string('repack-below');
    const repackBelow = below === undefined ? undefined : Number(below);
    if (below !== undefined && !(repackBelow! >= 0 && repackBelow! <= 1)) options.problems.push(`--repack-below: a fraction from 0 to 1 (got ${JSON.stringify(below)})`);
    if (options.problems.length > 0) throw new ConfigError(options.problems);
    const store = { store: built.store, s3: built.s3! };
    const location = typeof built.store === 'string' ? built.store : built.store.location;
    const { listStore, pruneStore } = await import('./manage.js');
    if (command === 'ls') {
      const { caches, totals } = await listStore(store);
      return { command, store: location, caches: listed(caches), totals, seconds: seconds() };
    }
    const dryRun = values['dry-run'] === true;
    const { deleted, gc } = await pruneStore({
      ...store, dryRun, ...(olderThanMs === undefined ? {} : { olderThanMs }), ...(keep === undefined ? {} : { keep }), ...(maxSize === undefined ? {} : { maxSize }),
      ...(gcGraceMs === undefined ? {} : { gcGraceMs }), ...(repackBelow === undefined ? {} : { repackBelow }),
    });
    return {
      command, store: location, dryRun, deleted: listed(deleted), seconds: seconds(),
      gc: { deletedPacks: gc.deletePacks.map(({ key, size }) => ({ key, size })), marked: gc.mark, deletedMarks: gc.deleteMarks, garbage: gc.garbage },
    };
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
    const { hashTree } = await import('./hash.js');
    const { onProgress } = hooks;
    const tree = await hashTree(root, {
      ...(built.threads === undefined ? {} : { threads: built.threads }),
      ...(onProgress ? { onProgress: (files: number, bytes: number) => onProgress({ phase: 'hash', files, bytes, done: false, seconds: seconds() }) } : {}),
    });
    process.stdout.write(formatManifest(tree.digests));
    tree.problems.forEach(hooks.onWarning);
    return { command, root, hasher: tree.hasher, files: tree.digests.size, unhashable: tree.unhashable.length, bytes: tree.bytes, warnings: tree.problems, seconds: seconds() };
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
  if (report.command === 'ls') printCaches(report.caches, out, '', report.totals);
  if (report.command === 'stats') out.write((await import('./events.js')).statsTable(report));
  if (report.command === 'restore' || report.command === 'save') await record(report, gathered, env, onWarning);
  if (report.command === 'prune') {
    printCaches(report.deleted, out, report.dryRun ? 'would delete  ' : 'deleted  ');
    printCollected(report.gc, out, report.dryRun);
  }
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

// The AWS SDK's version is pinned; its notice about future Node versions is noise in build logs.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.exitCode = await run(process.argv.slice(2), process.env);
