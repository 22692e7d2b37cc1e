import { readdirSync, readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('layout');
// The compiled suite runs from dist/test: the sources are two levels up.
const WORKERS = new URL('../../workers/', import.meta.url);

/** Every module specifier of a source file: static imports and re-exports, and each import() call's argument as written. */
function specifiersOf(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+(['"])(.*?)\1/gms)) found.push(m[2]!);
  for (const m of source.matchAll(/^\s*import\s+(['"])(.*?)\1/gm)) found.push(m[2]!);
  for (const m of source.matchAll(/\bimport\(\s*([^)]*?)\s*\)/g)) found.push(/^(['"]).*\1$/.test(m[1]!) ? m[1]!.slice(1, -1) : m[1]!);
  return found;
}

/** What a worker module may import: Node, packages, other worker modules, and src/core (pure). */
function allowedInWorkers(specifier: string): boolean {
  if (specifier.startsWith('node:')) return true;
  if (/^\.\/[\w.-]+\.js$/.test(specifier)) return true;
  if (/^\.\.\/src\/core\/[\w.-]+\.js$/.test(specifier)) return true;
  // A bare package name (scoped or not, with or without a subpath); never a relative or absolute path.
  return /^(@[\w.-]+\/)?[\w][\w.-]*(\/[\w./-]+)?$/.test(specifier);
}

test('the scanner finds static, type-only, re-exported and dynamic imports', () => {
  const source = "import { a } from 'node:fs';\nimport type {\n  B,\n} from './types.js';\nexport { c } from '../src/core/c.js';\nimport 'tar';\nconst d = await import('../src/d.js');\nconst e = await import(name);\n";
  assert.equal(specifiersOf(source).sort(), ['../src/core/c.js', '../src/d.js', './types.js', 'name', 'node:fs', 'tar']);
});

test('workers/ modules import only node: builtins, packages, src/core and each other', () => {
  const files = readdirSync(WORKERS).filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'));
  assert.ok(files.includes('tasks.ts'), files.join(' '));
  const bad: string[] = [];
  for (const file of files) {
    const specifiers = specifiersOf(readFileSync(new URL(file, WORKERS), 'utf8'));
    assert.ok(specifiers.length > 0, `no imports found in workers/${file}`);
    for (const specifier of specifiers) if (!allowedInWorkers(specifier)) bad.push(`workers/${file}: ${specifier}`);
  }
  assert.equal(bad, [], `workers import outside core/:\n${bad.join('\n')}`);
});

test.run();
