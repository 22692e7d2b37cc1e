import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CLI } from './helpers.js';
import { ACCESS_KEY_ID, type TestS3 } from './s3-server.js';

/** A `nix-build-cache serve` process: its socket, its log lines so far, and how to stop it. */
export interface DaemonProcess {
  socket: string;
  log: string[];
  process: ChildProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts `serve` at `dir`/run/socket in front of the S3 server (or `endpoint`, a proxy before it),
 * with the credentials in its environment only; resolves once it says it listens.
 */
export async function startDaemon(dir: string, s3: TestS3, secret: string, extra: string[] = [], endpoint = s3.endpoint): Promise<DaemonProcess> {
  const socket = join(dir, 'run', 'socket');
  const child = spawn(process.execPath, [CLI, 'serve', '--socket', socket, '--store', `s3://${s3.bucket}/daemon`, '--endpoint', endpoint,
    '--connect-timeout', '1', '--max-attempts', '1', ...extra], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: secret }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log.push(...chunk.toString().split('\n').filter(Boolean));
      if (log.some((line) => line.includes('listening on'))) resolve();
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${log.join('\n')}`)));
  });
  return {
    socket, log, process: child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
