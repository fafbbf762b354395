// A local webhook receiver for notification tests: records every request by path. `/flaky/...`
// answers 500 to the first delivery of each message, `/dead/...` always 503, `/redirect/...` a 302
// to `/moved/...`, and `/huge/...` a 200 whose body never ends (1 MiB every 50 ms).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  body: { text: string; blocks?: unknown[] };
  /** The HTTP status the receiver answered. */
  status: number;
}

export interface WebhookReceiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: Received[] = [];
  const seen = new Set<string>();
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      let status = 200;
      if (path.startsWith('/dead')) status = 503;
      else if (path.startsWith('/flaky') && !seen.has(path + raw)) status = 500;
      seen.add(path + raw);
      let body: Received['body'];
      try {
        body = JSON.parse(raw);
      } catch {
        body = { text: '' };
        status = 400;
      }
      if (path.startsWith('/redirect')) status = 302;
      received.push({ path, body, status });
      if (path.startsWith('/redirect')) {
        res.writeHead(302, { location: path.replace(/^\/redirect/, '/moved') }).end();
      } else if (path.startsWith('/huge') && status === 200) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(1 << 20, 'x');
        const timer = setInterval(() => res.write(chunk), 50);
        res.on('close', () => clearInterval(timer));
      } else {
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'no');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // a never-ending answer would hold close() open
      }),
  };
}
