/**
 * Generated projects for the toolchain suite (toolchains.slow.ts): a Cargo workspace of three crates
 * and a GHC project of 17 modules. Deterministic: the same call gives the same bytes. Every module has
 * one bias line that an edit changes (a one-line edit that changes the program's output).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../helpers.js';
import { writeSources } from '../realtools/tools.js';
import type { SourceTree } from '../realtools/project.js';

// ---------------------------------------------------------------------------------------------
// Cargo: crates/base (lib: lib.rs + b1..b4), crates/engine (lib, depends on base: lib.rs + e1..e4),
// crates/app (bin, depends on engine and base: main.rs + a1..a3). 14 .rs files, no external crates.

/** The workspace's crates, sorted. */
export const CARGO_CRATES = ['app', 'base', 'engine'];

const rsModule = (n: number, extra: string) => [
  'const BIAS: u64 = 0;',
  '',
  'pub fn value() -> u64 {',
  `    let mut v: u64 = ${n};`,
  `    for i in 0..${(n % 5) + 2} {`,
  '        v = v.wrapping_mul(7).wrapping_add(i);',
  '    }',
  `    v % 1000 + BIAS${extra}`,
  '}',
  '',
].join('\n');

const crateToml = (name: string, deps: string[]) => [
  '[package]', `name = "${name}"`, 'version = "0.1.0"', 'edition = "2021"', 'publish = false', '',
  '[dependencies]', ...deps.map((d) => `${d} = { path = "../${d}" }`), '',
].join('\n');

/** The workspace without Cargo.lock. */
function cargoInputs(): SourceTree {
  const files: SourceTree = {
    'Cargo.toml': ['[workspace]', 'members = ["crates/base", "crates/engine", "crates/app"]', 'resolver = "2"', ''].join('\n'),
    'crates/base/Cargo.toml': crateToml('base', []),
    'crates/engine/Cargo.toml': crateToml('engine', ['base']),
    'crates/app/Cargo.toml': crateToml('app', ['base', 'engine']),
    'crates/base/src/lib.rs': ['pub mod b1;', 'pub mod b2;', 'pub mod b3;', 'pub mod b4;', '',
      'pub fn total() -> u64 {', '    b1::value() + b2::value() + b3::value() + b4::value()', '}', ''].join('\n'),
    'crates/engine/src/lib.rs': ['pub mod e1;', 'pub mod e2;', 'pub mod e3;', 'pub mod e4;', '',
      'pub fn total() -> u64 {', '    base::total() + e1::value() + e2::value() + e3::value() + e4::value()', '}', ''].join('\n'),
    'crates/app/src/main.rs': ['mod a1;', 'mod a2;', 'mod a3;', '',
      'fn main() {', '    let sum = engine::total() + a1::value() + a2::value() + a3::value();',
      '    println!("toolchains {}", sum);', '}', ''].join('\n'),
  };
  for (let i = 1; i <= 4; i++) files[`crates/base/src/b${i}.rs`] = rsModule(i, '');
  for (let i = 1; i <= 4; i++) files[`crates/engine/src/e${i}.rs`] = rsModule(10 + i, ` + base::b${i}::value() % 7`);
  for (let i = 1; i <= 3; i++) files[`crates/app/src/a${i}.rs`] = rsModule(20 + i, ` + engine::e${i}::value() % 5`);
  return files;
}

/** The workspace plus the Cargo.lock that `cargo generate-lockfile --offline` writes for it (in `scratch`). */
export async function cargoSources(scratch: string, cargo: string, env: Record<string, string>): Promise<SourceTree> {
  const files = cargoInputs();
  writeSources(scratch, files);
  const result = await runCommand(cargo, ['generate-lockfile', '--offline'], { cwd: scratch, env });
  if (result.code !== 0) throw new Error(`cargo generate-lockfile failed: ${result.stderr}`);
  return { ...files, 'Cargo.lock': readFileSync(join(scratch, 'Cargo.lock'), 'utf8') };
}

// ---------------------------------------------------------------------------------------------
// GHC: Core.Base (leaf); a chain Core.M01 → … → Core.M08 (each imports the previous, M01 imports
// Core.Base); a fan Leaf.T01 … Leaf.T06 (each imports Core.Base); App.Top imports Core.M08 and every
// Leaf; Main imports App.Top. 17 modules. Each has `  where bias = 0` (a value edit: at -O0 the
// interface does not change) and a final `-- extra` line (replacing it with `extra = ()` adds an
// export: the interface changes).

const CHAIN = Array.from({ length: 8 }, (_, i) => `Core.M0${i + 1}`);
const LEAVES = Array.from({ length: 6 }, (_, i) => `Leaf.T0${i + 1}`);
/** Every module, sorted. */
export const GHC_MODULES = ['App.Top', 'Core.Base', ...CHAIN, ...LEAVES, 'Main'].sort();

const fn = (name: string) => name.split('.').at(-1)!.toLowerCase();

function hsModule(name: string, imports: string[], expr: string): string {
  return [
    `module ${name} where`, '',
    ...imports.map((m) => `import ${m}`), ...(imports.length ? [''] : []),
    `${fn(name)} :: Int`,
    `${fn(name)} = (${expr}) \`mod\` 1000 + bias`,
    '  where bias = 0', '',
    '-- extra', '',
  ].join('\n');
}

export const hsPath = (module: string) => `${module.replace(/\./g, '/')}.hs`;

export function ghcSources(): SourceTree {
  const files: SourceTree = {};
  files[hsPath('Core.Base')] = hsModule('Core.Base', [], '41 * 3');
  CHAIN.forEach((m, i) => {
    const prev = i === 0 ? 'Core.Base' : CHAIN[i - 1]!;
    files[hsPath(m)] = hsModule(m, [prev], `${fn(prev)} * 7 + ${i + 1}`);
  });
  LEAVES.forEach((m, i) => { files[hsPath(m)] = hsModule(m, ['Core.Base'], `base * ${i + 2} + ${i}`); });
  files[hsPath('App.Top')] = hsModule('App.Top', ['Core.M08', ...LEAVES], ['m08', ...LEAVES.map(fn)].join(' + '));
  files['Main.hs'] = ['module Main (main) where', '', 'import App.Top', '',
    'main :: IO ()', 'main = putStrLn ("toolchains " ++ show top)', ''].join('\n');
  return files;
}

/** One-line edits, each returning a new tree. */
export function editRust(files: SourceTree, path: string, bias: number): SourceTree {
  return replaceLine(files, path, /^const BIAS: u64 = \d+;$/m, `const BIAS: u64 = ${bias};`);
}

export function editHaskellValue(files: SourceTree, module: string, bias: number): SourceTree {
  return replaceLine(files, hsPath(module), /^ {2}where bias = \d+$/m, `  where bias = ${bias}`);
}

export function editHaskellExport(files: SourceTree, module: string): SourceTree {
  return replaceLine(files, hsPath(module), /^-- extra$/m, 'extra = ()');
}

function replaceLine(files: SourceTree, path: string, line: RegExp, replacement: string): SourceTree {
  const old = files[path];
  if (typeof old !== 'string' || !line.test(old)) throw new Error(`cannot edit ${path}`);
  return { ...files, [path]: old.replace(line, replacement) };
}
