// What the fake ticket servers (test/support/jira.ts, test/support/servicenow.ts) share: the
// tickets they hold, how tests make them misbehave, and the node:http server that does so
// before a provider's own handler answers.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeBehaviour = { kind: 'ok' } | { kind: 'down' } | { kind: 'slow'; ms: number } | { kind: 'rate_limited'; retryAfterSeconds: number };

export interface FakeTicket {
  key: string; // PROJ-123, CHG0000123, INC0000123
  type?: string; // Jira issue type name (default "Task"); ServiceNow: from the key's table
  status: 'open' | 'in_progress' | 'done'; // the fake shows it in the provider's own terms (Jira status+statusCategory; ServiceNow state)
  priority?: string;
  assignee?: string; // email
  reporter?: string; // email (ServiceNow: opened_by)
  window?: { start: Date; end: Date }; // a change request's window
}

export interface FakeTicketServer {
  url: string;
  /** Jira only: the field ids the fake keeps a change window in (for the config's change_window). */
  changeWindowFields?: { start_field: string; end_field: string };
  put(ticket: FakeTicket): void;
  remove(key: string): void;
  behave(behaviour: FakeBehaviour): void;
  requests: number;
  /** Every request's path and query as received, in order: what a client really asked for. */
  paths: string[];
  close(): Promise<void>;
}

/** A provider's answer to one well-behaved request. */
export type TicketHandler = (req: IncomingMessage, url: URL, reply: (status: number, body: unknown, headers?: Record<string, string>) => void) => void;

/**
 * A fake on 127.0.0.1 that counts requests, applies the behaviour set by `behave` (down: 503,
 * slow: answers after `ms`, rate_limited: 429 with Retry-After), then lets `handle` answer.
 * `tooMany` is the provider's 429 body.
 */
export async function startTicketServer(
  handle: TicketHandler,
  tickets: Map<string, FakeTicket>,
  tooMany: unknown,
  extra: Pick<FakeTicketServer, 'changeWindowFields'> = {},
): Promise<FakeTicketServer> {
  let behaviour: FakeBehaviour = { kind: 'ok' };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    fake.requests += 1;
    fake.paths.push(req.url ?? '');
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (res.destroyed) return;
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain;charset=UTF-8' : 'application/json;charset=UTF-8', ...headers }).end(text);
    };
    const now = behaviour;
    if (now.kind === 'down') return reply(503, '<html><body>Service Unavailable</body></html>');
    if (now.kind === 'rate_limited') return reply(429, tooMany, { 'retry-after': String(now.retryAfterSeconds) });
    const answer = () => handle(req, new URL(req.url ?? '/', 'http://fake'), reply);
    if (now.kind === 'slow') setTimeout(answer, now.ms).unref();
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fake: FakeTicketServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ...extra,
    put: (ticket) => void tickets.set(ticket.key, ticket),
    remove: (key) => void tickets.delete(key),
    behave: (next) => void (behaviour = next),
    requests: 0,
    paths: [],
    close: () =>
      new Promise((resolve) => {
        // A slow answer still pending would hold close() until it is sent.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return fake;
}

/** Basic with the fake's user and secret, or the secret as a bearer token (an OAuth client's). */
export function authorized(req: IncomingMessage, username: string, secret: string): boolean {
  const given = req.headers.authorization ?? '';
  return given === `Basic ${Buffer.from(`${username}:${secret}`).toString('base64')}` || given === `Bearer ${secret}`;
}
