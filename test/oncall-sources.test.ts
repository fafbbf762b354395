// Who is on call, as FactSources answers it from PagerDuty and Opsgenie (issue 40), against the
// fakes in test/support. No stack: run alone with
//   npm run build && npx mocha --no-config --exit dist/test/oncall-sources.test.js
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { OncallConfig, TenantConfig } from '../src/config';
import type { OncallFacts } from '../src/domain/facts';
import { FactSources } from '../src/integrations';
import type { FakeOncallServer } from './support/oncall';
import { startFakeOpsgenie } from './support/opsgenie';
import { startFakePagerDuty } from './support/pagerduty';

const TOKEN = 'the-right-token';
const TOKEN_ENV = 'ONCALL_SOURCES_TEST_TOKEN';
process.env[TOKEN_ENV] = TOKEN;

const PROVIDERS = [
  { source: 'pagerduty', start: startFakePagerDuty, namesServices: true },
  // Opsgenie's services are not read (src/integrations/opsgenie.ts): its entries name none.
  { source: 'opsgenie', start: startFakeOpsgenie, namesServices: false },
] as const;

/** A shift end the providers can say exactly: whole seconds. */
const hoursFromNow = (hours: number) => new Date(Math.floor(Date.now() / 1000) * 1000 + hours * 3600_000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const { source, start, namesServices } of PROVIDERS) {
  describe(`on call from ${source}`, function () {
    this.timeout(10_000);
    let fake: FakeOncallServer;
    beforeEach(async () => (fake = await start(TOKEN)));
    afterEach(() => fake.close());

    function sourcesWith(config: Partial<OncallConfig> = {}) {
      const oncall = { source, url: fake.url, token_env: TOKEN_ENV, timeout_ms: 1000, cache_seconds: 60, ...config };
      return new FactSources([{ id: 'acme', oncall } as unknown as TenantConfig]);
    }
    async function oncallOf(sources: FactSources, email: string): Promise<OncallFacts> {
      return (await sources.facts('acme', { id: `sub-${email}`, email }, { reason: 'checking' })).oncall!;
    }

    it('says a user who is on call for nothing is not on call', async () => {
      fake.onCall('ann@example.com', []);
      assert.deepEqual(await oncallOf(sourcesWith(), 'ann@example.com'), { status: 'not_on_call', source, schedules: [], services: [], level: null, until: null });
    });

    it('says a user on call at level 1 is, for which schedules and services at that level, until the first of their level 1 shifts ends', async () => {
      const end = hoursFromNow(4);
      // Three entries: past one page of the fakes' (PagerDuty's) answers.
      fake.onCall('ann@example.com', [
        { schedule: 'Payments primary', service: 'Payments', level: 1, end },
        { schedule: 'Checkout primary', service: 'Checkout', level: 1, end: hoursFromNow(9) },
        { schedule: 'Search secondary', service: 'Search', level: 2, end: hoursFromNow(1) },
      ]);
      fake.onCall('joann@example.com', [{ schedule: 'Ledger primary', service: 'Ledger', level: 1, end: hoursFromNow(2) }]);
      const oncall = await oncallOf(sourcesWith(), 'Ann@Example.com');
      assert.equal(oncall.status, 'on_call');
      assert.equal(oncall.level, 1);
      assert.equal(oncall.until, end.toISOString());
      for (const schedule of ['Payments primary', 'Checkout primary']) assert.ok(oncall.schedules.map((s) => s.name).includes(schedule), `${schedule} in ${JSON.stringify(oncall.schedules)}`);
      assert.ok(!oncall.schedules.map((s) => s.name).includes('Search secondary'), 'a schedule of a later level is not one of level 1');
      assert.ok(!oncall.schedules.map((s) => s.name).includes('Ledger primary'), 'another user’s schedule');
      assert.deepEqual(
        oncall.services.map((s) => s.name).filter((s) => ['Payments', 'Checkout', 'Search', 'Ledger'].includes(s)),
        namesServices ? ['Checkout', 'Payments'] : [],
      );
    });

    it('says a user on call only at level 3 is, at level 3', async () => {
      const end = hoursFromNow(6);
      fake.onCall('bob@example.com', [{ schedule: 'Database escalation', service: 'Database', level: 3, end }]);
      const oncall = await oncallOf(sourcesWith(), 'bob@example.com');
      assert.equal(oncall.status, 'on_call');
      assert.equal(oncall.level, 3);
      assert.equal(oncall.until, end.toISOString());
      assert.ok(oncall.schedules.map((s) => s.name).includes('Database escalation'));
    });

    it('names only what a user is on call for, not another service on call by someone else', async () => {
      fake.onCall('ann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      fake.onCall('carl@example.com', [{ schedule: 'Search primary', service: 'Search', level: 1, end: hoursFromNow(3) }]);
      const oncall = await oncallOf(sourcesWith(), 'carl@example.com');
      assert.equal(oncall.status, 'on_call');
      assert.ok(oncall.schedules.map((s) => s.name).includes('Search primary'));
      assert.ok(!oncall.schedules.map((s) => s.name).includes('Payments primary'));
      assert.ok(!oncall.services.map((s) => s.name).includes('Payments'));
      assert.equal(oncall.services.map((s) => s.name).includes('Search'), namesServices);
    });

    it('says a person the source does not know is not on call, and that it does not know them', async () => {
      fake.onCall('joann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      const oncall = await oncallOf(sourcesWith(), 'ann@example.com');
      assert.equal(oncall.status, 'not_on_call');
      assert.equal(oncall.note, `${source} has no user ann@example.com`);
    });

    it('says unknown, and why, when the source is down', async () => {
      fake.onCall('ann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      fake.behave({ kind: 'down' });
      const oncall = await oncallOf(sourcesWith(), 'ann@example.com');
      assert.equal(oncall.status, 'unknown');
      assert.match(oncall.note ?? '', /HTTP 503/);
    });

    it('says unknown within timeout_ms when the source is slower, without waiting for it', async () => {
      fake.onCall('ann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      fake.behave({ kind: 'slow', ms: 3000 });
      const started = Date.now();
      const oncall = await oncallOf(sourcesWith({ timeout_ms: 200 }), 'ann@example.com');
      assert.ok(Date.now() - started < 1000, `answered after ${Date.now() - started} ms`);
      assert.equal(oncall.status, 'unknown');
      assert.match(oncall.note ?? '', /within/);
    });

    it('says unknown when rate-limited, and asks nothing more until Retry-After has passed', async () => {
      for (const email of ['ann@example.com', 'bob@example.com', 'carl@example.com']) fake.onCall(email, [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      fake.behave({ kind: 'rate_limited', retryAfterSeconds: 1 });
      const sources = sourcesWith();
      const limited = await oncallOf(sources, 'ann@example.com');
      assert.equal(limited.status, 'unknown');
      assert.match(limited.note ?? '', /rate limited/);
      const asked = fake.requests;

      fake.behave({ kind: 'ok' });
      assert.equal((await oncallOf(sources, 'bob@example.com')).status, 'unknown');
      assert.equal(fake.requests, asked, 'asked again before Retry-After passed');

      await sleep(1100);
      assert.equal((await oncallOf(sources, 'carl@example.com')).status, 'on_call');
      assert.ok(fake.requests > asked);
    });

    it('answers a second call within cache_seconds without asking the source', async () => {
      fake.onCall('ann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      const sources = sourcesWith({ cache_seconds: 60 });
      const first = await oncallOf(sources, 'ann@example.com');
      const asked = fake.requests;
      assert.ok(asked > 0);
      assert.deepEqual(await oncallOf(sources, 'ann@example.com'), first);
      assert.equal(fake.requests, asked);
    });

    it('says unknown when the source refuses the credentials', async () => {
      fake.onCall('ann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: hoursFromNow(3) }]);
      const tokenFile = path.join(mkdtempSync(path.join(tmpdir(), 'oncall-')), 'token');
      writeFileSync(tokenFile, 'a-wrong-token\n');
      const oncall = await oncallOf(sourcesWith({ token_env: undefined, token_file: tokenFile }), 'ann@example.com');
      assert.equal(oncall.status, 'unknown');
      assert.match(oncall.note ?? '', /HTTP 401/);
    });
  });
}

describe('on call from pagerduty, in calls', () => {
  it('costs two calls for a user on call for one escalation policy', async () => {
    const fake = await startFakePagerDuty(TOKEN);
    try {
      fake.onCall('ann@example.com', [{ schedule: 'Payments primary', service: 'Payments', level: 1, end: null }]);
      const sources = new FactSources([{ id: 'acme', oncall: { source: 'pagerduty', url: fake.url, token_env: TOKEN_ENV, timeout_ms: 1000, cache_seconds: 60 } } as unknown as TenantConfig]);
      const oncall = (await sources.facts('acme', { id: 'ann@example.com' }, {})).oncall!;
      assert.equal(oncall.status, 'on_call');
      assert.equal(oncall.until, null, 'a shift that does not end');
      assert.equal(fake.requests, 2);
    } finally {
      await fake.close();
    }
  });
});
