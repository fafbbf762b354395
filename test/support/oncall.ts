// What the fake on-call providers (test/support/pagerduty.ts, test/support/opsgenie.ts) share:
// the control surface tests drive them with, and the plain HTTP part (credentials, down, slow,
// rate-limited, counting requests), so each fake only says how its provider's API answers.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One way a person is on call now: `schedule` '' means an escalation rule names them directly. */
export interface FakeOncall { schedule: string; service: string; level: number; end: Date | null }
export type FakeBehaviour = { kind: 'ok' } | { kind: 'down' } | { kind: 'slow'; ms: number } | { kind: 'rate_limited'; retryAfterSeconds: number };
export interface FakeOncallServer {
  url: string;          // base URL for the tenant config's `url`
  /** Makes the person (by email) a user of the provider, on call for these entries now ([]: a user, not on call). */
  onCall(email: string, entries: FakeOncall[]): void;
  /** How it answers from now on (down: 503 with the provider's error body; slow: waits ms first; rate_limited: 429 + Retry-After). */
  behave(behaviour: FakeBehaviour): void;
  /** Requests received so far (any path). */
  requests: number;
  close(): Promise<void>;
}

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What a provider's fake says about its own API. */
export interface FakeProvider {
  /** Whether the request carries the right credentials. */
  authorized(req: IncomingMessage): boolean;
  /** The provider's error body for this status. */
  error(status: 401 | 404 | 429 | 503, message: string): unknown;
  /** Headers a 429 carries besides Retry-After. */
  rateLimitHeaders?(retryAfterSeconds: number): Record<string, string>;
  /** The answer to a GET of this path and query, by the people on call now. */
  answer(url: URL, people: ReadonlyMap<string, FakeOncall[]>): Reply;
}

/** Stable ids for names: the same name always gets the same id, a new name the next one. */
export class Ids {
  private readonly byName = new Map<string, string>();
  constructor(private readonly make: (n: number) => string) {}
  of(name: string): string {
    let id = this.byName.get(name);
    if (id === undefined) this.byName.set(name, (id = this.make(this.byName.size + 1)));
    return id;
  }
}

/** Serves a fake provider on 127.0.0.1 (port 0), with the control surface tests use. */
export async function startFakeOncallServer(provider: FakeProvider): Promise<FakeOncallServer> {
  const people = new Map<string, FakeOncall[]>();
  let behaviour: FakeBehaviour = { kind: 'ok' };
  const server: Server = createServer((req, res) => {
    fake.requests++;
    const reply = ({ status, body, headers = {} }: Reply) => {
      if (!res.destroyed) res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    };
    const respond = () => {
      if (behaviour.kind === 'down') return reply({ status: 503, body: provider.error(503, 'Service Unavailable') });
      if (behaviour.kind === 'rate_limited') {
        const seconds = behaviour.retryAfterSeconds;
        return reply({ status: 429, body: provider.error(429, 'Rate Limit Exceeded'), headers: { 'retry-after': String(seconds), ...provider.rateLimitHeaders?.(seconds) } });
      }
      if (!provider.authorized(req)) return reply({ status: 401, body: provider.error(401, 'Authentication failed') });
      if (req.method !== 'GET') return reply({ status: 404, body: provider.error(404, 'Not Found') });
      reply(provider.answer(new URL(req.url ?? '/', 'http://fake'), people));
    };
    if (behaviour.kind === 'slow') {
      const timer = setTimeout(respond, behaviour.ms);
      res.on('close', () => clearTimeout(timer));
    } else respond();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fake: FakeOncallServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    onCall: (email, entries) => void people.set(email.toLowerCase(), entries),
    behave: (next) => void (behaviour = next),
    requests: 0,
    close: () =>
      new Promise((resolve) => {
        // A slow answer still pending must not hold the close.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return fake;
}
