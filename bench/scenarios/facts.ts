// Facts: the same no-change ensure, by a tenant that asks PagerDuty and Jira (cached).
import type { GrantView } from '../../src/domain/grant';
import { FACTS_TENANT, FACTS_TICKET, ROLE, USER, type TenantSetup, account, log, settings, sleep } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { closedLoop, measure, type LoadResult, type LoadSpec } from '../load';
import { round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'facts',
  key: 'facts',
  title: 'facts',
  run,
  rows: (facts: any, s) => [
    [
      `no-change ensure with on call and ticket sources (cached): p99, the median of 3 runs (ratios ${facts.p99Ratios.join(', ')})`,
      `${facts.withSources.p99} ms (p50 ${facts.withSources.p50} ms; ${facts.sourceRequests} calls to the sources while measured)`,
      `${facts.without.p99} ms (p50 ${facts.without.p50} ms), the same ensure in a tenant without sources`,
      x(facts.withSources.p99, facts.without.p99),
      '≤ 1.25x',
      yes(facts.withSources.p99 <= 1.25 * facts.without.p99),
    ],
    ['no-change ensure with sources: throughput', `${facts.withSources.rps} req/s`, `${facts.without.rps} req/s`, x(facts.withSources.rps, facts.without.rps), '', ''],
  ],
};

async function run(b: Bench) {
  const { api, tenants, stack, headersOf, changeIs, sources } = b;
  const factsTenant = { id: FACTS_TENANT.id, token: await stack.issueToken(FACTS_TENANT.id, USER, { expiresIn: '4h' }) };
  const plainTenant = tenants[0];
  const body = (acct: string, duration: number) =>
    JSON.stringify({ entitlements: [{ target: `AWS::Account::${acct}`, role: ROLE, duration_seconds: duration }], justification: { reason: 'bench', attachments: [FACTS_TICKET] } });
  const ensureIn = async (t: { id: string; token: string }, acct: string, duration: number): Promise<GrantView> => {
    const res = await fetch(`${api}/v1/access/ensure`, { method: 'POST', headers: { 'content-type': 'application/json', ...headersOf(t as TenantSetup) }, body: body(acct, duration) });
    const answer = (await res.json()) as { grants: GrantView[] };
    if (!res.ok) throw new Error(`ensure ${acct}: HTTP ${res.status} ${JSON.stringify(answer)}`);
    return answer.grants[0];
  };
  log(`facts: creating ${settings.noChangePool} grants in each of two tenants, one with sources`);
  // The no-change scenario's accounts (the same grants, in the plain tenant), and the same ids in the facts tenant.
  const pools = [{ t: plainTenant, series: 1 }, { t: factsTenant, series: 1 }];
  for (const { t, series } of pools) {
    await closedLoop(settings.noChangePool, settings.activationConcurrency, async (i) => {
      const deadline = Date.now() + 120_000;
      while ((await ensureIn(t, account(series, i), 7200)).status !== 'active') {
        if (Date.now() > deadline) throw new Error(`facts: grant ${series}/${i} not active`);
        await sleep(250);
      }
    });
  }
  const sample = await ensureIn(factsTenant, account(1, 0), 3600);
  if (sample.validation.oncall?.status !== 'on_call' || sample.validation.ticket?.status !== 'found') throw new Error(`facts: the sources did not answer: ${JSON.stringify(sample.validation)}`);
  const spec = (t: { id: string; token: string }, series: number): LoadSpec => ({
    url: api,
    request: (i) => ({ path: '/v1/access/ensure', headers: headersOf(t as TenantSetup), body: body(account(series, i % settings.noChangePool), 3600) }),
    expect: changeIs('none'),
  });
  const requestsBefore = sources!.pagerduty.requests + sources!.jira.requests;
  // Both loads at once, half the connections each, three times: on a shared machine, whatever
  // else runs falls on both alike (one after the other, a p99 measures the neighbours).
  const runs: { without: LoadResult; withSources: LoadResult }[] = [];
  for (let r = 0; r < 3; r++) {
    log(`facts: no-change ensure with and without sources, at once (${r + 1} of 3)`);
    const half = Math.max(1, Math.round(settings.connections / 2));
    const [without, withSources] = await Promise.all([measure(spec(plainTenant, 1), half), measure(spec(factsTenant, 1), half)]);
    runs.push({ without, withSources });
  }
  const ratios = runs.map((r) => r.withSources.p99 / r.without.p99);
  const median = [...ratios].sort((a, b) => a - b)[1];
  const { without, withSources } = runs[ratios.indexOf(median)];
  return { without, withSources, p99Ratios: ratios.map((x) => round(x, 2)), sourceRequests: sources!.pagerduty.requests + sources!.jira.requests - requestsBefore };
}
