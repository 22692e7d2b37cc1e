// A network link of a given speed in front of a server on loopback: a TCP proxy on 127.0.0.1 that
// lets bytes through each way at `bytesPerSecond` (full duplex, shared by every connection, as one
// network interface is), so that a benchmark on one machine sees a store behind a real network.
import { connect, createServer, type Socket } from 'node:net';

export interface Link {
  endpoint: string;
  close(): Promise<void>;
}

/** One direction of the link: when the next byte may pass. */
class Direction {
  #free = 0;
  constructor(readonly bytesPerSecond: number) {}

  /** Milliseconds to hold `bytes` back so that the direction never runs faster than its speed. */
  delay(bytes: number): number {
    const now = performance.now();
    this.#free = Math.max(this.#free, now) + (bytes / this.bytesPerSecond) * 1000;
    return this.#free - now;
  }
}

/** Copies `from` to `to` through `direction`, pausing `from` while a chunk waits for its turn. */
function shape(from: Socket, to: Socket, direction: Direction): void {
  let held: Promise<void> = Promise.resolve();
  from.on('data', (chunk: Buffer) => {
    const wait = direction.delay(chunk.length);
    // Below a millisecond the timer would cost more than it shapes: the debt carries to the next chunk.
    if (wait < 1) {
      to.write(chunk);
      return;
    }
    from.pause();
    held = new Promise((resolve) => setTimeout(() => {
      to.write(chunk);
      from.resume();
      resolve();
    }, wait));
  });
  // The last chunk may still be held back when its stream ends.
  from.on('end', () => void held.then(() => to.end()));
}

export async function startLink(targetPort: number, bytesPerSecond: number): Promise<Link> {
  const up = new Direction(bytesPerSecond);
  const down = new Direction(bytesPerSecond);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    shape(client, upstream, up);
    shape(upstream, client, down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
