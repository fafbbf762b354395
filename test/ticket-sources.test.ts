// The ticket a justification names, as policies see it (issue 40): FactSources with the Jira and
// ServiceNow clients against local fakes of their APIs (test/support/jira.ts, servicenow.ts).
// No stack: each test makes its own FactSources, so no answer is cached across tests.
import assert from 'node:assert/strict';
import type { TenantConfig, TicketsConfig } from '../src/config';
import type { TicketFacts } from '../src/domain/facts';
import type { Justification } from '../src/domain/grant';
import { FactSources, type Person } from '../src/integrations';
import { startFakeJira } from './support/jira';
import { startFakeServiceNow } from './support/servicenow';
import type { FakeTicket, FakeTicketServer } from './support/tickets';

const USER = 'jit-service@example.com';
const SECRET = 'ticket-secret-1';
const SECRET_ENV = 'TICKET_SOURCES_TEST_SECRET';
const TENANT = 'tenant-tickets';
const alice: Person = { id: 'alice-subject', email: 'alice@example.com' };

interface Provider {
  source: TicketsConfig['source'];
  start: (username: string, secret: string) => Promise<FakeTicketServer>;
  /** The nth ticket key of an ordinary ticket, and of a change request. */
  key: (n: number) => string;
  changeKey: (n: number) => string;
  /** What the provider calls an ordinary ticket and a change request (`type`), and its status names. */
  type: string;
  changeType: string;
  openName: string;
  doneName: string;
  changeOpenName: string;
  /** A priority as the fake is given it, and as the provider names it. */
  priority: [given: string, named: string];
  /** Where a client asked for ticket `key`, as the fake saw the path and query. */
  askedFor: (path: string) => string | undefined;
  /** A tenant pattern broad enough to take in the text after a key. */
  broadPattern: string;
  /** Reasons that put something after a key, to steer a client that pastes them into its request. */
  hostileSuffixes: string[];
  changeWindow: (fake: FakeTicketServer) => TicketsConfig['change_window'];
  attachment: (key: string) => string;
}

const PROVIDERS: Provider[] = [
  {
    source: 'jira',
    start: startFakeJira,
    key: (n) => `PROJ-${n}`,
    changeKey: (n) => `OPS-${n}`,
    type: 'Task',
    changeType: 'Change',
    openName: 'To Do',
    doneName: 'Done',
    changeOpenName: 'To Do',
    priority: ['High', 'High'],
    askedFor: (path) => /^\/rest\/api\/3\/issue\/([^?]*)/.exec(path)?.[1],
    broadPattern: '[A-Z]+-\\S+',
    hostileSuffixes: ['/../../x', '?jql=project%3DSECRET', '/../../../rest/api/3/myself'],
    changeWindow: (fake) => fake.changeWindowFields,
    attachment: (key) => `https://example.atlassian.net/browse/${key}`,
  },
  {
    source: 'servicenow',
    start: startFakeServiceNow,
    key: (n) => `INC${String(n).padStart(7, '0')}`,
    changeKey: (n) => `CHG${String(n).padStart(7, '0')}`,
    type: 'incident',
    changeType: 'change_request',
    openName: 'New',
    doneName: 'Closed',
    changeOpenName: 'Scheduled',
    priority: ['2 - High', '2 - High'],
    askedFor: (path) => new URL(path, 'http://x').searchParams.get('sysparm_query')?.replace(/^number=/, ''),
    broadPattern: 'INC\\S+',
    hostileSuffixes: ['^ORnumberISNOTEMPTY', '/../sys_user', '&sysparm_query=active=true'],
    changeWindow: () => undefined,
    attachment: (key) => `https://example.service-now.com/nav_to.do?uri=incident.do?sysparm_query=number=${key}`,
  },
];

for (const provider of PROVIDERS) {
  describe(`${provider.source} tickets, as policies see them`, function () {
    this.timeout(10_000);
    let fake: FakeTicketServer;
    let extra: Partial<TicketsConfig> = {};

    // Far from UTC, so a date read as local time shows in the window test.
    const zone = process.env.TZ;
    before(() => {
      process.env[SECRET_ENV] = SECRET;
      process.env.TZ = 'Pacific/Chatham';
    });
    after(() => {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    });
    beforeEach(async () => {
      fake = await provider.start(USER, SECRET);
      extra = {};
    });
    afterEach(() => fake.close());

    /** A new FactSources for the tenant (nothing cached), its tickets asked of the fake. */
    function sources(config: Partial<TicketsConfig> = {}): FactSources {
      const tickets = { source: provider.source, url: fake.url, username: USER, token_env: SECRET_ENV, timeout_ms: 1000, cache_seconds: 60, ...extra, ...config };
      return new FactSources([{ id: TENANT, tickets } as unknown as TenantConfig]);
    }
    async function ticketFacts(justification: Justification, from = sources()): Promise<TicketFacts> {
      const facts = await from.facts(TENANT, alice, justification);
      assert.ok(facts.ticket, 'the tenant has a ticket source');
      return facts.ticket;
    }
    function put(ticket: Partial<FakeTicket> & { key: string }) {
      fake.put({ status: 'open', ...ticket });
    }

    it('finds an open ticket assigned to the requester: requester_is_assignee, not reporter', async () => {
      put({ key: provider.key(1), assignee: 'Alice@Example.com', reporter: 'bob@example.com', priority: provider.priority[0] });
      assert.deepEqual(await ticketFacts({ reason: `fixing ${provider.key(1)}` }), {
        status: 'found',
        source: provider.source,
        key: provider.key(1),
        type: provider.type,
        status_category: 'open',
        status_name: provider.openName,
        priority: provider.priority[1],
        requester_is_assignee: true,
        requester_is_reporter: false,
        change_window: null,
      });
    });

    it('says a ticket the requester reported, assigned to nobody, is theirs as reporter only', async () => {
      put({ key: provider.key(1), status: 'in_progress', reporter: 'alice@example.com' });
      const ticket = await ticketFacts({ reason: provider.key(1) });
      assert.deepEqual([ticket.status_category, ticket.requester_is_assignee, ticket.requester_is_reporter], ['in_progress', false, true]);
    });

    it('says a done ticket is done, in the provider\'s own words too', async () => {
      put({ key: provider.key(2), status: 'done', assignee: 'alice@example.com' });
      const ticket = await ticketFacts({ reason: provider.key(2) });
      assert.deepEqual([ticket.status, ticket.status_category, ticket.status_name], ['found', 'done', provider.doneName]);
    });

    it('says not_found for a key the provider has no ticket by', async () => {
      put({ key: provider.key(1) });
      const ticket = await ticketFacts({ reason: `see ${provider.key(404)}` });
      assert.deepEqual([ticket.status, ticket.key, ticket.status_category], ['not_found', provider.key(404), null]);
      assert.match(ticket.note ?? '', new RegExp(`no ticket ${provider.key(404)}`));
    });

    it('says none, without asking, when the justification names no ticket', async () => {
      const ticket = await ticketFacts({ reason: 'routine maintenance', attachments: ['https://wiki.example.com/runbook'] });
      assert.deepEqual([ticket.status, ticket.key], ['none', null]);
      assert.equal(fake.requests, 0);
    });

    it('takes the ticket in the attachments before the one in the reason', async () => {
      put({ key: provider.key(1) });
      put({ key: provider.key(2) });
      const ticket = await ticketFacts({ reason: `follow-up to ${provider.key(1)}`, attachments: [provider.attachment(provider.key(2))] });
      assert.deepEqual([ticket.status, ticket.key], ['found', provider.key(2)]);
      assert.equal(fake.requests, 1);
    });

    it("gives a change request's window, as ISO 8601 in UTC", async () => {
      extra = { change_window: provider.changeWindow(fake) };
      const window = { start: new Date('2031-03-04T22:00:00Z'), end: new Date('2031-03-05T01:30:00Z') };
      put({ key: provider.changeKey(7), type: 'Change', assignee: 'alice@example.com', window });
      const ticket = await ticketFacts({ reason: `change ${provider.changeKey(7)}` });
      assert.deepEqual([ticket.type, ticket.status_category, ticket.status_name, ticket.change_window], [provider.changeType, 'open', provider.changeOpenName, { start: '2031-03-04T22:00:00.000Z', end: '2031-03-05T01:30:00.000Z' }]);
    });

    it('gives no window for a change request without one', async () => {
      extra = { change_window: provider.changeWindow(fake) };
      put({ key: provider.changeKey(8), type: 'Change' });
      assert.equal((await ticketFacts({ reason: provider.changeKey(8) })).change_window, null);
    });

    it('says unknown, with a note, when the provider is down', async () => {
      fake.behave({ kind: 'down' });
      const ticket = await ticketFacts({ reason: provider.key(1) });
      assert.deepEqual([ticket.status, ticket.key], ['unknown', provider.key(1)]);
      assert.match(ticket.note ?? '', /HTTP 503/);
    });

    for (const [wrong, config] of [
      ['username', { username: 'someone-else@example.com' }],
      ['secret', { token_env: 'TICKET_SOURCES_TEST_NO_SUCH_SECRET' }],
    ] as const) {
      it(`says unknown when the provider refuses the credentials (a wrong ${wrong})`, async () => {
        put({ key: provider.key(1) });
        const ticket = await ticketFacts({ reason: provider.key(1) }, sources(config));
        assert.equal(ticket.status, 'unknown');
        assert.match(ticket.note ?? '', /HTTP 401/);
      });
    }

    it('authenticates with the secret as a bearer token when no username is configured', async () => {
      put({ key: provider.key(1) });
      const ticket = await ticketFacts({ reason: provider.key(1) }, sources({ username: undefined }));
      assert.equal(ticket.status, 'found');
    });

    it('says unknown within about timeout_ms when the provider is slow', async () => {
      put({ key: provider.key(1) });
      fake.behave({ kind: 'slow', ms: 3000 });
      const started = Date.now();
      const ticket = await ticketFacts({ reason: provider.key(1) }, sources({ timeout_ms: 300 }));
      const took = Date.now() - started;
      assert.equal(ticket.status, 'unknown');
      assert.ok(took >= 250 && took < 800, `answered in ${took} ms`);
    });

    it('says unknown when rate limited, and asks nothing more until Retry-After has passed', async () => {
      put({ key: provider.key(1) });
      put({ key: provider.key(2) });
      put({ key: provider.key(3) });
      const once = sources();
      fake.behave({ kind: 'rate_limited', retryAfterSeconds: 1 });
      const limited = await ticketFacts({ reason: provider.key(1) }, once);
      assert.equal(limited.status, 'unknown');
      assert.match(limited.note ?? '', /HTTP 429/);
      fake.behave({ kind: 'ok' });
      const meanwhile = await ticketFacts({ reason: provider.key(2) }, once);
      assert.equal(meanwhile.status, 'unknown');
      assert.match(meanwhile.note ?? '', /rate limited/);
      assert.equal(fake.requests, 1);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.equal((await ticketFacts({ reason: provider.key(3) }, once)).status, 'found');
      assert.equal(fake.requests, 2);
    });

    it('keeps an answer for cache_seconds: the same ticket again asks nothing', async () => {
      put({ key: provider.key(1), assignee: 'alice@example.com' });
      const once = sources({ cache_seconds: 60 });
      const first = await ticketFacts({ reason: provider.key(1) }, once);
      put({ key: provider.key(1), status: 'done' });
      assert.deepEqual(await ticketFacts({ reason: `again ${provider.key(1)}` }, once), first);
      assert.equal(fake.requests, 1);
    });

    for (const suffix of provider.hostileSuffixes) {
      it(`asks only for the key a hostile reason names: "${provider.key(1)}${suffix}"`, async () => {
        put({ key: provider.key(1) });
        const ticket = await ticketFacts({ reason: `${provider.key(1)}${suffix}` });
        assert.deepEqual([ticket.status, ticket.key], ['found', provider.key(1)]);
        assert.deepEqual(fake.paths.map(provider.askedFor), [provider.key(1)]);
      });
    }

    it('refuses, asking nothing, a key that a too broad pattern took with what follows it', async () => {
      put({ key: provider.key(1) });
      const ticket = await ticketFacts({ reason: `${provider.key(1)}${provider.hostileSuffixes[0]}` }, sources({ pattern: provider.broadPattern }));
      assert.equal(ticket.status, 'unknown');
      assert.match(ticket.note ?? '', /not a ticket key/);
      assert.equal(fake.requests, 0);
    });
  });
}
