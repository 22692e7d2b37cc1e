// Who is at the other end of the daemon's socket, and whether the write policy (--writer) lets
// them save and delete. Node does not expose SO_PEERCRED: a small addon (src/native/peercred.c) does.
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';

export interface Peer {
  pid: number;
  uid: number;
  /** Primary and supplementary groups. */
  groups: number[];
}

type PeerCredentials = (fd: number) => [pid: number, uid: number, gid: number];

/** The addon's SO_PEERCRED call, or undefined when it was not built. */
export function loadPeerCredentials(): PeerCredentials | undefined {
  try {
    return (createRequire(import.meta.url)('../../../build/Release/nbc_peercred.node') as { peerCredentials: PeerCredentials }).peerCredentials;
  } catch {
    return undefined;
  }
}

/** Supplementary groups of a live process, from /proc; none when it is gone. */
async function supplementaryGroups(pid: number): Promise<number[]> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const line = status.split('\n').find((entry) => entry.startsWith('Groups:')) ?? '';
  return line.slice('Groups:'.length).trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The peer of a connected Unix socket. */
export async function peerOf(socket: Socket, credentials: PeerCredentials): Promise<Peer> {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) throw new Error('the connection has no file descriptor');
  const [pid, uid, gid] = credentials(fd);
  return { pid, uid, groups: [gid, ...(await supplementaryGroups(pid))] };
}

/** Fields of /etc/passwd or /etc/group: name → id. */
async function idsByName(file: string): Promise<Map<string, number>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return new Map(text.split('\n').map((line) => line.split(':')).filter((f) => f.length > 2).map((f) => [f[0]!, Number(f[2])]));
}

/** The users and groups that may write: `--writer USER` (name or uid) and `--writer @GROUP` (name or gid). */
export interface WritePolicy {
  uids: ReadonlySet<number>;
  gids: ReadonlySet<number>;
}

/** Resolves --writer values; throws one error naming every unknown user or group. */
export async function writePolicy(writers: readonly string[]): Promise<WritePolicy> {
  const [users, groups] = await Promise.all([idsByName('/etc/passwd'), idsByName('/etc/group')]);
  const uids = new Set<number>();
  const gids = new Set<number>();
  const unknown: string[] = [];
  for (const writer of writers) {
    const isGroup = writer.startsWith('@');
    const name = isGroup ? writer.slice(1) : writer;
    const id = /^\d+$/.test(name) ? Number(name) : (isGroup ? groups : users).get(name);
    if (id === undefined) unknown.push(`${isGroup ? 'group' : 'user'} ${name}`);
    else (isGroup ? gids : uids).add(id);
  }
  if (unknown.length > 0) throw new Error(`--writer: no such ${unknown.join(', ')}`);
  return { uids, gids };
}

export function mayWrite(policy: WritePolicy, peer: Peer): boolean {
  return policy.uids.has(peer.uid) || peer.groups.some((gid) => policy.gids.has(gid));
}
