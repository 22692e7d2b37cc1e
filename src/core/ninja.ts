// ninja keeps times and paths of its own: `.ninja_log` has each output's mtime, `.ninja_deps` each
// output's mtime and the paths of the headers it read. Restore moves artifacts in time (and may
// move the tree): these records must move with them, or ninja reruns every command.

export const NINJA_LOG = '.ninja_log';
export const NINJA_DEPS = '.ninja_deps';

/** Maps a time ninja recorded (nanoseconds) to the restored one. */
export type MapTime = (nanoseconds: bigint) => bigint;
export type MapPath = (path: Buffer) => Buffer;

const LOG_HEADER = /^# ninja log v([5-7])\n/;

/**
 * `.ninja_log` with each entry's mtime (third field, nanoseconds) mapped. Undefined for a log
 * version this does not know (ninja then reruns what it must; nothing breaks).
 */
export function rewriteNinjaLog(data: Buffer, mapTime: MapTime): Buffer | undefined {
  const text = data.toString('latin1');
  const header = LOG_HEADER.exec(text);
  if (!header) return undefined;
  const lines = text.slice(header[0].length).split('\n').map((line) => {
    const fields = line.split('\t');
    if (fields.length !== 5 || !/^\d+$/.test(fields[2]!)) return line;
    fields[2] = mapTime(BigInt(fields[2]!)).toString();
    return fields.join('\t');
  });
  return Buffer.from(header[0] + lines.join('\n'), 'latin1');
}

const DEPS_HEADER = Buffer.from('# ninjadeps\n');
const DEPS_VERSION = 4;

/**
 * `.ninja_deps` (version 4) with each record's mtime mapped and each path mapped. Records:
 * a uint32 size whose top bit marks a deps record; a path record is the path padded with NULs to
 * four bytes plus a uint32 checksum; a deps record is the output's id, its mtime as two uint32
 * halves, then the ids of its inputs. Undefined for another version or a damaged file.
 */
export function rewriteNinjaDeps(data: Buffer, mapTime: MapTime, mapPath: MapPath = (path) => path): Buffer | undefined {
  const headerSize = DEPS_HEADER.length + 4;
  if (data.length < headerSize || !data.subarray(0, DEPS_HEADER.length).equals(DEPS_HEADER)) return undefined;
  if (data.readInt32LE(DEPS_HEADER.length) !== DEPS_VERSION) return undefined;
  const out: Buffer[] = [data.subarray(0, headerSize)];
  for (let at = headerSize; at < data.length;) {
    if (at + 4 > data.length) return undefined;
    const head = data.readUInt32LE(at);
    const size = head & 0x7fffffff;
    const body = data.subarray(at + 4, at + 4 + size);
    if (body.length !== size || size % 4 !== 0) return undefined;
    if (head >>> 31) {
      if (size < 12) return undefined;
      const record = Buffer.from(body);
      const mtime = (BigInt(record.readUInt32LE(8)) << 32n) | BigInt(record.readUInt32LE(4));
      const mapped = BigInt.asUintN(64, mapTime(mtime));
      record.writeUInt32LE(Number(mapped & 0xffffffffn), 4);
      record.writeUInt32LE(Number(mapped >> 32n), 8);
      out.push(data.subarray(at, at + 4), record);
    } else {
      if (size < 4) return undefined;
      const padded = body.subarray(0, size - 4);
      let end = padded.length;
      while (end > 0 && padded[end - 1] === 0) end--;
      const path = mapPath(padded.subarray(0, end));
      const padding = (4 - (path.length % 4)) % 4;
      const sizeField = Buffer.alloc(4);
      sizeField.writeUInt32LE(path.length + padding + 4);
      out.push(sizeField, path, Buffer.alloc(padding), body.subarray(size - 4));
    }
    at += 4 + size;
  }
  return Buffer.concat(out);
}

/** Statements of a ninja file: a first line and its indented bindings, continuations joined. */
function statements(text: string): string[][] {
  const result: string[][] = [];
  for (const line of text.replace(/\$\r?\n[ \t]*/g, '').split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    if (/^[ \t]/.test(line) && result.length > 0) result[result.length - 1]!.push(line.trim());
    else result.push([line]);
  }
  return result;
}

/**
 * Whether a ninja file names `root` in a command ninja checks (not a generator's): ninja hashes
 * each command into its log, so after a move every such edge would run again.
 */
export function ninjaCommandsName(text: string, root: string): boolean {
  const generators = new Set<string>();
  const rulesNamingRoot = new Set<string>();
  const edges: { rule: string; namesRoot: boolean }[] = [];
  for (const [first, ...bindings] of statements(text)) {
    const rule = /^rule\s+(\S+)/.exec(first!);
    if (rule) {
      if (bindings.some((b) => /^generator\s*=\s*\S/.test(b))) generators.add(rule[1]!);
      if (bindings.some((b) => /^(command|rspfile_content)\s*=/.test(b) && b.includes(root))) rulesNamingRoot.add(rule[1]!);
      continue;
    }
    const build = /^build\s(.*?[^$]):\s*(\S+)/.exec(first!);
    if (build && !bindings.some((b) => /^generator\s*=\s*\S/.test(b))) {
      edges.push({ rule: build[2]!, namesRoot: first!.includes(root) || bindings.some((b) => b.includes(root)) });
    }
  }
  return edges.some((edge) => edge.rule !== 'phony' && !generators.has(edge.rule) && (edge.namesRoot || rulesNamingRoot.has(edge.rule)));
}
