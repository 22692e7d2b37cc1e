import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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

/** What s3rver's file-system store does with an object (lib/stores/filesystem.js), as far as used here. */
interface ObjectStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  putObject(object: { bucket: string; key: string; metadata: unknown; content: Buffer | Readable }): Promise<{ size: number; md5: string }>;
}

/**
 * s3rver writes an object in place and answers its PUT before the bytes are on disk, so two PUTs of
 * one key at once (racing saves) can leave a torn object, which S3 never does: a PUT replaces an
 * object whole. Here an object is written to a temporary and renamed into place once written
 * (completed multipart uploads go through putObject too).
 */
function replaceWhole(store: ObjectStore): void {
  store.putObject = async (object) => {
    const path = store.getResourcePath(object.bucket, object.key, 'object');
    // Listings take only names ending in `._S3rver_object`: the temporary is never listed.
    const temporary = `${path}.tmp-${randomBytes(4).toString('hex')}`;
    const md5 = createHash('md5');
    let size = 0;
    const counting = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    await mkdir(dirname(path), { recursive: true });
    try {
      await pipeline(Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content, counting, createWriteStream(temporary));
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

/** `parent` holds the server's files: the system's temporary directory unless said otherwise. */
export async function startS3(bucket = 'nbc-test', parent = tmpdir()): Promise<TestS3> {
  const directory = await mkdtemp(join(parent, 'nbc-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket, configs: [] }] });
  replaceWhole((server as unknown as { store: ObjectStore }).store);
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`, port, bucket, directory,
    close: async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
