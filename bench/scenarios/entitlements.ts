// Entitlements: what may I ask for, at an organisation's size.
import { loadPolicySet } from '../../src/policy';
import { reconcileScheduleId } from '../../src/schedules';
import { waitFor } from '../../scripts/stack';
import { cataloguePolicies, type Bench } from '../world';
import { CATALOGUE_ENVIRONMENTS, CATALOGUE_TENANT, account, settings } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { round, summary } from '../stats';

export const scenario: Scenario = {
  name: 'entitlements',
  key: 'entitlements',
  title: 'entitlements',
  run,
  rows: (entitlements: any, s) => {
    const e = entitlements;
    const what = `what may I ask for: first page (${e.firstPageSize}) of ${e.accounts} accounts × ${e.permissionSets} permission sets`;
    const floor = (p: 'p50' | 'p99') => `${e.floorMs[p]} ms (100 Cedar decisions, ${e.decisionMs[p]} ms each)`;
    return [
      [`${what}, a new principal: p50`, `${e.coldFirstPageMs.p50} ms`, floor('p50'), x(e.coldFirstPageMs.p50, e.floorMs.p50), '< 200 ms', yes(e.coldFirstPageMs.p50 < 200)],
      [`${what}, a new principal: p99`, `${e.coldFirstPageMs.p99} ms`, floor('p99'), x(e.coldFirstPageMs.p99, e.floorMs.p99), '', ''],
      [`${what}, asked again: p50 / p99`, `${e.warmFirstPageMs.p50} / ${e.warmFirstPageMs.p99} ms`, floor('p50'), x(e.warmFirstPageMs.p50, e.floorMs.p50), '', ''],
      [
        `every pair, pages of 100`,
        `${e.allPages.seconds} s, ${e.allPages.pages} pages, ${e.allPages.listed} listed`,
        `${e.everyDecidedMs} s (one decision per pair)`,
        '',
        'each once',
        yes(e.allPages.listed === e.pairs),
      ],
    ];
  },
};

async function run(b: Bench) {
  const { api, temporal, stack, dir } = b;
  const id = CATALOGUE_TENANT.id;
  // The worker made the tenant's reconciliation Schedule at start-up: one round reads the permission sets.
  const schedule = temporal.schedule.getHandle(reconcileScheduleId(id));
  await waitFor('the catalogue tenant\'s Schedule', async () => Boolean(await schedule.describe().catch(() => undefined)), 60_000);
  await schedule.trigger();
  await waitFor('its reconciliation round', async () => {
    const run = (await schedule.describe()).info.recentActions.at(-1)?.action.workflow;
    return Boolean(run && (await temporal.workflow.getHandle(run.workflowId, run.firstExecutionRunId).describe()).status.name === 'COMPLETED');
  }, 120_000);
  const page = async (token: string, query: string) => {
    const started = performance.now();
    const res = await fetch(`${api}/v1/access/entitlements${query}`, { headers: { authorization: `Bearer ${token}`, 'x-tenant-id': id } });
    const body = (await res.json()) as { entitlements: { role: string; account: { id: string } }[]; next_cursor: string | null };
    if (!res.ok) throw new Error(`entitlements: HTTP ${res.status} ${JSON.stringify(body)}`);
    return { ms: performance.now() - started, body };
  };
  const requester = (n: number) => stack.issueToken(id, { sub: `bench-asker-${n}`, email: `bench-asker-${n}@example.com`, groups: ['engineering'] }, { expiresIn: '4h' });
  // The API reads the round's report (again within seconds when it had found none).
  const first = await requester(-1);
  await waitFor('the API to know the permission sets', async () => (await page(first, '?limit=1')).body.entitlements.length > 0, 60_000);

  // The floor: one Cedar decision, as the API makes it (the same policy folder), each a new request (no memo).
  const policies = loadPolicySet(cataloguePolicies(dir));
  const decisionMs: number[] = [];
  for (let n = 0; n < 2000; n++) {
    const started = performance.now();
    policies.authorize({
      principal: { id: `floor-${n}`, email: 'floor@example.com', groups: ['engineering'] },
      action: n % 2 ? 'activate' : 'request',
      accountId: account(7, n % settings.entitlementsAccounts),
      accountEnvironment: CATALOGUE_ENVIRONMENTS[n % 3],
      context: { role: `Team${n % 20}Access`, duration_seconds: 3600, has_reason: true, has_ticket_attachment: true },
    });
    decisionMs.push(performance.now() - started);
  }
  const ms = (values: number[], digits = 1) => {
    const { n, p50, p99, max } = summary(values);
    return { n, p50: round(p50, digits), p99: round(p99, digits), max: round(max, digits) };
  };
  const decision = ms(decisionMs.slice(200), 3);

  // A new principal each sample: nothing of theirs decided yet (their token checked once before, as a client's would be).
  const cold: number[] = [];
  const warm: number[] = [];
  let listed = 0;
  for (let n = 0; n < settings.entitlementsSamples; n++) {
    const token = await requester(n);
    await page(token, '?role=NoSuchRole');
    const a = await page(token, '?limit=100');
    const b = await page(token, '?limit=100');
    cold.push(a.ms);
    warm.push(b.ms);
    listed = a.body.entitlements.length;
    if (JSON.stringify(a.body) !== JSON.stringify(b.body)) throw new Error('the same principal got two different first pages');
  }
  // Every pair once, a page of 100 at a time (one principal, one pass).
  const passToken = await requester(-2);
  const seen = new Set<string>();
  let pages = 0;
  const passStarted = performance.now();
  for (let cursor: string | null = null; ; ) {
    const { body } = await page(passToken, `?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    pages++;
    for (const e of body.entitlements) seen.add(`${e.account.id} ${e.role}`);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  const passMs = performance.now() - passStarted;
  return {
    accounts: settings.entitlementsAccounts,
    permissionSets: settings.entitlementsPermissionSets,
    pairs: settings.entitlementsAccounts * settings.entitlementsPermissionSets,
    firstPageSize: listed,
    coldFirstPageMs: ms(cold),
    warmFirstPageMs: ms(warm),
    decisionMs: decision,
    floorMs: { p50: round(decision.p50 * 100, 1), p99: round(decision.p99 * 100, 1) },
    everyDecidedMs: round((decision.p50 * settings.entitlementsAccounts * settings.entitlementsPermissionSets) / 1000, 1),
    allPages: { pages, listed: seen.size, seconds: round(passMs / 1000, 1) },
  };
}
