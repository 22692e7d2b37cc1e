import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** What a fault-injecting proxy does with one request; `forward` passes it to the real server. */
export type ProxyRule = (req: IncomingMessage, res: ServerResponse, forward: (onBody?: BodyFilter) => void) => void;
/** Sees each chunk of the upstream answer's body; returns false to stop forwarding (the rule took over). */
export type BodyFilter = (chunk: Buffer, res: ServerResponse) => boolean;

export interface Proxy {
  endpoint: string;
  close(): Promise<void>;
}

/** An HTTP proxy on 127.0.0.1 in front of a test server, for injecting faults at the boundary. */
export async function startProxy(targetPort: number, rule: ProxyRule): Promise<Proxy> {
  const server: Server = createServer((req, res) => {
    const forward = (onBody?: BodyFilter) => {
      // agent: false, so no kept-alive connection to the server outlives the test.
      const upstream = request({ host: '127.0.0.1', port: targetPort, path: req.url, method: req.method, headers: req.headers, agent: false }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on('data', (chunk: Buffer) => {
          if (!onBody || onBody(chunk, res)) res.write(chunk);
          else answer.destroy();
        });
        answer.on('end', () => res.end());
      });
      upstream.on('error', () => res.destroy());
      // A client that goes away (killed, timed out) takes its upstream request with it.
      res.on('close', () => upstream.destroy());
      req.pipe(upstream);
    };
    rule(req, res, forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Whether a request is for an archive object (not its digest, not a listing). */
export function isArchive(req: IncomingMessage): boolean {
  return /\.tar(\.gz|\.zst)?$/.test(new URL(req.url ?? '/', 'http://proxy').pathname);
}
