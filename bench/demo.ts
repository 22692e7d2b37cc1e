// The README's demo (npm run demo): a generated C project built with make twice through the CLI on a
// local store, cold and then warm with one file changed, as a Nix build would run it.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cProject, parseMakeOutput, unitName } from './c-project.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const UNITS = 60;

async function build(work: string, files: Record<string, string>): Promise<{ seconds: number; compiled: string[]; summary: string }> {
  const top = await mkdtemp(join(work, 'nix-build-demo-'));
  const root = join(top, 'source');
  for (const [path, content] of Object.entries(files)) {
    await run('mkdir', ['-p', join(root, path, '..')]);
    await writeFile(join(root, path), content);
  }
  await run('touch', ['-d', '@1', ...Object.keys(files).map((path) => join(root, path))]);
  const env = { ...process.env, NIX_BUILD_TOP: top, NBC_STORE: join(work, 'store') };
  const args = ['--cache-name', 'demo', '--cache-dir', 'obj'];
  const started = process.hrtime.bigint();
  const restored = await run(process.execPath, [CLI, 'restore', ...args], { cwd: root, env });
  const make = await run('make', ['-j2'], { cwd: root, env });
  const saved = await run(process.execPath, [CLI, 'save', ...args], { cwd: root, env });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, ...parseMakeOutput(make.stdout), summary: `${restored.stderr}${saved.stderr}`.trim() };
}

const work = await mkdtemp(join(tmpdir(), 'nix-build-cache-demo-'));
// A store for Nix builds exists beforehand (the one-time set-up): restore and save never create one there.
await mkdir(join(work, 'store'));
try {
  const files = cProject({ units: UNITS, weight: 100 });
  console.log(`A C project of ${UNITS + 1} files; each build runs restore, make -j2, save in a fresh directory.\n`);
  const cold = await build(work, files);
  console.log(`cold build: ${cold.seconds.toFixed(2)} s, compiled ${cold.compiled.length} files\n${cold.summary}\n`);
  const edited = `${unitName(7)}.c`;
  const warm = await build(work, { ...files, [edited]: `${files[edited]}/* edited */\n` });
  console.log(`warm build with ${edited} changed: ${warm.seconds.toFixed(2)} s, compiled: ${warm.compiled.join(' ') || 'nothing'}\n${warm.summary}\n`);
  console.log(`speed-up: ${(cold.seconds / warm.seconds).toFixed(1)}x`);
  if (warm.compiled.join(' ') !== edited) {
    console.error(`the warm build should have compiled exactly ${edited}`);
    process.exitCode = 1;
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
