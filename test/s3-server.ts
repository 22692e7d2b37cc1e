import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

/** A real S3-compatible server on 127.0.0.1 (s3rver), on a free port, with a fresh directory. */
export interface TestS3 {
  endpoint: string;
  port: number;
  bucket: string;
  directory: string;
  close(): Promise<void>;
}

/** s3rver accepts only this key id; it checks no signature, so any secret passes. */
export const ACCESS_KEY_ID = 'S3RVER';

/** `parent` holds the server's files: the system's temporary directory unless said otherwise. */
export async function startS3(bucket = 'nbc-test', parent = tmpdir()): Promise<TestS3> {
  const directory = await mkdtemp(join(parent, 'nbc-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket, configs: [] }] });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`, port, bucket, directory,
    close: async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
