import type { BytePath } from './paths.js';

/**
 * A manifest maps each file's byte path to its MD5 digest (32 lowercase hex digits). Its text form
 * is exactly GNU md5sum's: "<digest>  <name>\n", and a name holding "\\", "\n" or "\r" is escaped
 * with a leading "\\" on the line (coreutils 9), so `md5sum -c` reads what we write and vice versa.
 */
export type Manifest = ReadonlyMap<BytePath, string>;

const DIGEST = /^[0-9a-f]{32}$/;
const NEEDS_ESCAPE = /[\\\n\r]/;

function escapeName(name: BytePath): string {
  return name.replace(/[\\\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : '\\r'));
}

/** Formats entries in the order given (callers pass them sorted) as md5sum output bytes. */
export function formatManifest(manifest: Manifest): Buffer {
  let text = '';
  for (const [name, digest] of manifest) {
    text += NEEDS_ESCAPE.test(name) ? `\\${digest}  ${escapeName(name)}\n` : `${digest}  ${name}\n`;
  }
  return Buffer.from(text, 'latin1');
}

export interface ParsedManifest {
  manifest: Map<BytePath, string>;
  /** Lines that could not be read, as "line N: what is wrong". */
  problems: string[];
}

function unescapeName(name: string): string | undefined {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = name[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else if (next === 'r') out += '\r';
    else return undefined;
  }
  return out;
}

/** Reads md5sum output (text or binary mode markers); every unreadable line becomes a problem. */
export function parseManifest(data: Buffer, maxNameBytes = 4096): ParsedManifest {
  const manifest = new Map<BytePath, string>();
  const problems: string[] = [];
  const lines = data.toString('latin1').split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, index) => {
    const problem = (what: string) => problems.push(`line ${index + 1}: ${what}`);
    const escaped = line.startsWith('\\');
    const body = escaped ? line.slice(1) : line;
    const digest = body.slice(0, 32);
    const marker = body.slice(32, 34);
    const rawName = body.slice(34);
    if (!DIGEST.test(digest)) return problem('not an MD5 digest');
    if (marker !== '  ' && marker !== ' *') return problem('expected two spaces after the digest');
    const name = escaped ? unescapeName(rawName) : rawName;
    if (name === undefined || name === '') return problem('bad file name');
    if (name.length > maxNameBytes) return problem(`file name longer than ${maxNameBytes} bytes`);
    if (manifest.has(name)) return problem('file listed twice');
    manifest.set(name, digest);
  });
  return { manifest, problems };
}

export interface ManifestDiff {
  unchanged: BytePath[];
  changed: BytePath[];
  added: BytePath[];
  removed: BytePath[];
}

/** Compares today's manifest with the cached one; every list comes out sorted. */
export function diffManifests(current: Manifest, cached: Manifest): ManifestDiff {
  const diff: ManifestDiff = { unchanged: [], changed: [], added: [], removed: [] };
  for (const [name, digest] of current) {
    const before = cached.get(name);
    if (before === undefined) diff.added.push(name);
    else if (before === digest) diff.unchanged.push(name);
    else diff.changed.push(name);
  }
  for (const name of cached.keys()) if (!current.has(name)) diff.removed.push(name);
  for (const list of Object.values(diff)) list.sort();
  return diff;
}

/** Sorts a manifest by name in byte order, the order every manifest is written in. */
export function sortManifest(entries: Iterable<[BytePath, string]>): Map<BytePath, string> {
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
