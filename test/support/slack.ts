// A local stand-in for Slack's Web API and response_urls: `GET /api/users.info?user=U...` answers
// with the user's email (for the bot token it was given), and `POST /response/<name>` records
// what the service says back about a button click.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ResponsePost {
  name: string;
  body: { text?: string; blocks?: any[]; replace_original?: boolean; response_type?: string };
}

export interface FakeSlack {
  /** Slack's API base URL, as `notifications.slack.api_url` names it. */
  apiUrl: string;
  /** A response_url of this fake; what it receives is in `responses` under `name`. */
  responseUrl(name: string): string;
  responses: ResponsePost[];
  /** users.info calls, by Slack user id. */
  lookups: Map<string, number>;
  close(): Promise<void>;
}

export async function startFakeSlack(botToken: string, emails: Record<string, string>): Promise<FakeSlack> {
  const responses: ResponsePost[] = [];
  const lookups = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (url.pathname === '/api/users.info') {
        if (req.headers.authorization !== `Bearer ${botToken}`) return reply(200, { ok: false, error: 'invalid_auth' });
        const user = url.searchParams.get('user') ?? '';
        lookups.set(user, (lookups.get(user) ?? 0) + 1);
        const email = emails[user];
        return email ? reply(200, { ok: true, user: { id: user, profile: { email } } }) : reply(200, { ok: false, error: 'user_not_found' });
      }
      const response = /^\/response\/(.+)$/.exec(url.pathname);
      if (req.method === 'POST' && response) {
        responses.push({ name: decodeURIComponent(response[1]), body: JSON.parse(raw) });
        return res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      }
      reply(404, { ok: false, error: 'unknown_method' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    apiUrl: `${base}/api`,
    responseUrl: (name) => `${base}/response/${encodeURIComponent(name)}`,
    responses,
    lookups,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
