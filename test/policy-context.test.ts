// What policies see of a grant is the same for every action on it (issue 35 §6): the schedule of
// the call that asked for it (context.scheduled, context.starts_in_seconds) reaches `request` and
// `activate` at the ensure, `review` at every read and review of its request, and `revoke`. An API
// of the test's own, with the shipped policies and these beside them, through HTTP.
import assert from 'node:assert/strict';
import type { GrantView } from '../src/domain/grant';
import { type PolicyApi, startApiWithPolicies } from './support/policy-api';
import { freshAccount, OTHER_TENANT, target, TENANT } from './support/world';

const DAY = 86_400;

const POLICIES = `
@id("no-start-beyond-20-days")
@advice("Starts more than 20 days ahead are not taken.")
forbid (principal, action == Action::"request", resource)
when { context.starts_in_seconds > ${20 * DAY} };

@id("read-only-a-week-ahead-needs-review")
forbid (principal, action == Action::"activate", resource)
when { context.role == "ReadOnlyAccess" && context.starts_in_seconds > ${7 * DAY} };

@id("read-only-review-by-platform-admins-too")
permit (principal in Group::"platform-admins", action == Action::"review", resource)
when { context.role == "ReadOnlyAccess" };

@id("starts-a-day-ahead-reviewed-by-seniors")
forbid (principal, action == Action::"review", resource)
when { context.starts_in_seconds > ${DAY} }
unless { principal in Group::"senior" };

@id("on-call-withdraw-scheduled")
permit (principal in Group::"on-call", action == Action::"revoke", resource)
when { context.scheduled };
`;

describe('what policies see of a grant, for every action on it', function () {
  this.timeout(120_000);
  let api: PolicyApi;
  before(async () => {
    api = await startApiWithPolicies(POLICIES);
  });
  after(async () => {
    await api?.stop();
  });

  const inDays = (days: number) => new Date(Date.now() + days * DAY * 1000).toISOString();
  const ensureAt = (account: string, role: string, startsAt: string | undefined) =>
    api.call('POST', '/v1/access/ensure', {
      as: 'alice',
      body: { entitlements: [{ target: target(account), role, duration_seconds: 600 }], justification: { reason: 'change window' }, ...(startsAt && { starts_at: startsAt }) },
    });
  const withdraw = (grant: GrantView) => api.call('POST', `/v1/access/grants/${grant.id}/revoke`, { as: 'alice', body: {} });

  it('request: a start further ahead than a policy allows is refused', async () => {
    const far = await ensureAt(freshAccount(), 'ReadOnlyAccess', inDays(25));
    assert.equal(far.status, 403, JSON.stringify(far.body));
    assert.deepEqual(far.body.notices, ['Starts more than 20 days ahead are not taken.']);
    const near = await ensureAt(freshAccount(), 'ReadOnlyAccess', inDays(10));
    assert.equal(near.status, 200, JSON.stringify(near.body));
    await withdraw(near.body.grants[0]);
  });

  it('activate: a start far enough ahead needs a reviewer where a nearer one does not', async () => {
    const far = await ensureAt(freshAccount(), 'ReadOnlyAccess', inDays(8));
    assert.equal(far.body.grants?.[0]?.change, 'requested', JSON.stringify(far.body));
    const near = await ensureAt(freshAccount(), 'ReadOnlyAccess', inDays(6));
    assert.equal(near.body.grants?.[0]?.change, 'activated', JSON.stringify(near.body));
    for (const reply of [far, near]) await withdraw(reply.body.grants[0]);
  });

  it('review: a request whose start is more than a day ahead is reviewed by seniors only, and is invisible to other reviewers', async () => {
    const asked = await ensureAt(freshAccount(), 'AdministratorAccess', inDays(2));
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const grant: GrantView = asked.body.grants[0];
    const requestId = grant.access_request_id!;
    assert.equal(grant.change, 'requested');

    // carol reviews AdministratorAccess (platform-admins), but not this one: it does not exist for her.
    assert.equal((await api.call('GET', `/v1/access/requests/${requestId}`, { as: 'carol' })).status, 404);
    assert.equal((await api.call('GET', `/v1/access/grants/${grant.id}`, { as: 'carol' })).status, 200, 'she may still revoke it (platform-admins-revoke)');
    const queue = await api.call('GET', '/v1/access/requests?status=pending&limit=200', { as: 'carol' });
    assert.ok(!queue.body.requests.some((r: { id: string }) => r.id === requestId), 'not in her queue');
    const refused = await api.call('POST', `/v1/access/requests/${requestId}/review`, { as: 'carol', body: { decision: 'approve' } });
    assert.equal(refused.status, 404, JSON.stringify(refused.body));

    const approved = await api.call('POST', `/v1/access/requests/${requestId}/review`, { as: 'petra', body: { decision: 'approve' } });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.deepEqual([approved.body.status, approved.body.approvals.map((a: { reviewer_id: string }) => a.reviewer_id)], ['approved', ['petra']]);
    await withdraw(grant);

    // A start within the day is carol's to review, as any other request.
    const soon = (await ensureAt(freshAccount(), 'AdministratorAccess', inDays(0.5))).body.grants[0] as GrantView;
    const byCarol = await api.call('POST', `/v1/access/requests/${soon.access_request_id}/review`, { as: 'carol', body: { decision: 'deny' } });
    assert.equal(byCarol.status, 200, JSON.stringify(byCarol.body));
    assert.equal(byCarol.body.status, 'denied');
  });

  it('revoke: on-call may withdraw a scheduled grant of someone else, and not one asked for at once', async () => {
    const scheduled = (await ensureAt(freshAccount(), 'AdministratorAccess', inDays(1))).body.grants[0] as GrantView;
    const withdrawn = await api.call('POST', `/v1/access/grants/${scheduled.id}/revoke`, { as: 'olga', body: { reason: 'window cancelled' } });
    assert.equal(withdrawn.status, 200, JSON.stringify(withdrawn.body));
    assert.equal(withdrawn.body.status, 'revoked');

    const now = (await ensureAt(freshAccount(), 'AdministratorAccess', undefined)).body.grants[0] as GrantView;
    const refused = await api.call('POST', `/v1/access/grants/${now.id}/revoke`, { as: 'olga', body: {} });
    assert.equal(refused.status, 404, JSON.stringify(refused.body));
    await withdraw(now);
  });
});

// Cedar's decisions are remembered per policy set, which tenants sharing a policy folder share, by
// what a policy can read of the account (PolicySet.accountClass). Two tenants that say different
// things of one account are never answered from each other's decisions.
describe('one policy folder shared by two tenants that configure an account differently', function () {
  this.timeout(120_000);
  // Production in TENANT and staging in OTHER_TENANT; `named` is also named by a policy.
  const [unnamed, named] = [freshAccount(), freshAccount()];
  let api: PolicyApi;
  before(async () => {
    const policy = `@id("named-production-reviewed") forbid (principal, action == Action::"activate", resource == Account::"${named}") when { resource.environment == "production" };`;
    api = await startApiWithPolicies(policy, (config) => {
      const [mine, other] = [TENANT, OTHER_TENANT].map((t) => config.tenants.find((c) => c.id === t.id)!);
      other.policies = mine.policies;
      mine.accounts = { ...mine.accounts, [unnamed]: { environment: 'production' }, [named]: { environment: 'production' } };
      other.accounts = { ...other.accounts, [unnamed]: { environment: 'staging' }, [named]: { environment: 'staging' } };
    });
  });
  after(async () => {
    await api?.stop();
  });

  /** alice (the same principal, groups and call in both tenants), asking without changing anything. */
  const ask = async (tenant: string, account: string, duration_seconds: number) => {
    const reply = await api.call('POST', '/v1/access/ensure', {
      as: 'alice',
      tenant,
      body: { entitlements: [{ target: target(account), role: 'ReadOnlyAccess', duration_seconds }], justification: { reason: 'incident review' }, dry_run: true },
    });
    return reply.status === 200 ? reply.body.grants[0].change : `${reply.status} ${JSON.stringify(reply.body.details?.denied?.[0]?.policies)}`;
  };

  it('decides an account by what each tenant says of it, whichever tenant asked first', async () => {
    // Two hours: more than production allows (production-max-1h).
    assert.equal(await ask(OTHER_TENANT.id, unnamed, 7200), 'activated');
    assert.equal(await ask(TENANT.id, unnamed, 7200), '403 ["production-max-1h"]');
    assert.equal(await ask(OTHER_TENANT.id, unnamed, 7200), 'activated');
    // The account a policy names: its class holds its id and what the tenant says of it.
    assert.equal(await ask(TENANT.id, named, 600), 'requested');
    assert.equal(await ask(OTHER_TENANT.id, named, 600), 'activated');
    assert.equal(await ask(TENANT.id, named, 600), 'requested');
  });
});
