// Issue 12 §3 (extending a reviewed grant opens an extension request) and §6 (break-glass),
// through HTTP on the real stack.
import assert from 'node:assert/strict';
import { grantWorkflowId, type GrantView } from '../src/domain/grant';
import { type PolicyApi, startApiWithPolicies } from './support/policy-api';
import { assignmentsOf, call, current, ensure, eventually, freshAccount, grantReaching, OTHER_TENANT, recordHistory, target, TENANT } from './support/world';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Time between the test's clock reading and the service's: generous on a loaded machine. */
const TOLERANCE_MS = 15_000;

const review = (id: string, as: 'carol' | 'dave', decision: 'approve' | 'deny') =>
  call('POST', `/v1/access/requests/${id}/review`, { as, body: { decision } });

/** Once the grant's run has completed: a recorded history is then whole. */
const closed = (grantId: string) =>
  eventually('the grant’s run to complete', async () =>
    (await current().temporal.workflow.count(`AccessGrantId = '${grantId}' AND ExecutionStatus = 'Completed'`)).count > 0 ? true : undefined,
  60_000);

const admin = (account: string, durationSeconds: number) => [{ target: target(account), role: 'AdministratorAccess', duration_seconds: durationSeconds }];

/** alice's AdministratorAccess on `account`, approved by carol and active. */
async function activeAdminGrant(account: string, durationSeconds: number): Promise<GrantView> {
  const asked = await ensure(admin(account, durationSeconds), { reason: 'deploy fix' });
  assert.equal(asked.status, 200, JSON.stringify(asked.body));
  const approved = await review(asked.body.grants[0].access_request_id!, 'carol', 'approve');
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  return grantReaching(asked.body.grants[0].id, 'active');
}

/** alice asks for a longer AdministratorAccess on an active grant: an extension request. */
async function extensionOf(grant: GrantView, account: string, durationSeconds: number): Promise<GrantView> {
  const dry = await ensure(admin(account, durationSeconds), { reason: 'the fix takes longer', dryRun: true });
  assert.deepEqual(
    [dry.body.grants[0].change, dry.body.grants[0].status, dry.body.grants[0].access_request_id, dry.body.grants[0].expires_at],
    ['requested', 'active', null, grant.expires_at],
    'a dry run says it would request an extension, and changes nothing',
  );
  const asked = await ensure(admin(account, durationSeconds), { reason: 'the fix takes longer' });
  assert.equal(asked.status, 200, JSON.stringify(asked.body));
  const extension = asked.body.grants[0];
  assert.equal(extension.change, 'requested', JSON.stringify(extension));
  assert.equal(extension.status, 'active');
  assert.equal(extension.id, grant.id, 'the same grant');
  assert.match(extension.access_request_id!, UUID);
  assert.notEqual(extension.access_request_id, grant.access_request_id, 'a request of its own');
  assert.equal(extension.expires_at, grant.expires_at, 'the grant runs on to its current expiry');
  assert.ok(!extension.diagnostics.some((d) => d.code === 'extension_requires_review'), 'no dead end');
  return extension;
}

const breakGlass = (account: string, opts: { as?: 'olga' | 'alice' | 'otto'; reason?: string; duration?: number; dryRun?: boolean } = {}) =>
  call('POST', '/v1/access/ensure', {
    as: opts.as ?? 'olga',
    body: {
      entitlements: admin(account, opts.duration ?? 1800),
      justification: { reason: opts.reason ?? 'production is down' },
      break_glass: true,
      ...(opts.dryRun ? { dry_run: true } : {}),
    },
  });

describe('extension requests', function () {
  this.timeout(180_000);

  it('an active reviewed grant asked for longer opens an extension request; approval moves expires_at to approval time + duration', async () => {
    const account = freshAccount();
    const grant = await activeAdminGrant(account, 600);
    const extension = await extensionOf(grant, account, 3000);
    const id = extension.access_request_id!;

    const again = await ensure(admin(account, 3000), { reason: 'the fix takes longer' });
    assert.equal(again.body.grants[0].change, 'none', 'the pending extension answers');
    assert.equal(again.body.grants[0].access_request_id, id);

    const listed = await eventually('carol to see the extension request', async () => {
      const reply = await call('GET', '/v1/access/requests?status=pending', { as: 'carol' });
      return reply.body.requests?.find((r: { id: string }) => r.id === id);
    });
    assert.equal(listed.status, 'pending');
    assert.equal(listed.grants[0].status, 'active');
    assert.equal(listed.justification.reason, 'the fix takes longer');
    const original = await call('GET', `/v1/access/requests/${grant.access_request_id}`, { as: 'carol' });
    assert.equal(original.status, 200, 'the original request stays readable');
    assert.equal(original.body.status, 'approved');

    const selfReview = await call('POST', `/v1/access/requests/${id}/review`, { as: 'alice', body: { decision: 'approve' } });
    assert.equal(selfReview.status, 403, 'nobody reviews their own extension');

    const before = Date.now();
    const approved = await review(id, 'carol', 'approve');
    const after = Date.now();
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    const extended = await grantReaching(grant.id, 'active');
    const expiresAt = Date.parse(extended.expires_at!);
    assert.ok(expiresAt >= before + 3000_000 - TOLERANCE_MS && expiresAt <= after + 3000_000 + TOLERANCE_MS, `expires_at ${extended.expires_at}`);
    assert.equal(extended.duration_seconds, 3000);
    const repeated = await review(id, 'carol', 'approve');
    assert.equal(repeated.status, 200, 'a repeated review changes nothing');
    assert.equal((await grantReaching(grant.id, 'active')).expires_at, extended.expires_at);
    assert.equal((await call('POST', `/v1/access/grants/${grant.id}/revoke`, { body: {} })).status, 200);
    await closed(grant.id);
    await recordHistory('extension-approve-revoke', grant.id);
  });

  it('a denied extension leaves the grant as it was', async () => {
    const account = freshAccount();
    const grant = await activeAdminGrant(account, 600);
    const extension = await extensionOf(grant, account, 3000);
    const denied = await review(extension.access_request_id!, 'carol', 'deny');
    assert.equal(denied.status, 200, JSON.stringify(denied.body));
    assert.equal(denied.body.status, 'denied');
    const after = await grantReaching(grant.id, 'active');
    assert.equal(after.expires_at, grant.expires_at);
  });

  it('an operator’s approve signal on an active grant approves its waiting extension', async () => {
    const account = freshAccount();
    const grant = await activeAdminGrant(account, 600);
    const extension = await extensionOf(grant, account, 3000);
    const workflowId = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: grant.target, role: grant.role });
    await current().temporal.workflow.getHandle(workflowId).signal('approve', { reviewer: 'an-operator', comment: 'from the Web UI' });
    const request = await eventually('the extension to be approved', async () => {
      const r = await call('GET', `/v1/access/requests/${extension.access_request_id}`, { as: 'carol' });
      return r.body.status === 'approved' ? r.body : undefined;
    });
    assert.deepEqual(request.approvals.map((a: { reviewer_id: string }) => a.reviewer_id), ['an-operator']);
    assert.ok(Date.parse(request.grants[0].expires_at) > Date.parse(grant.expires_at!), 'extended');
  });

  it('an extension request lapses with the grant’s expiry, leaving the grant unchanged', async () => {
    const account = freshAccount();
    const grant = await activeAdminGrant(account, 20);
    const extension = await extensionOf(grant, account, 600);
    const expired = await grantReaching(grant.id, 'expired', 'alice', 90_000);
    assert.equal(expired.expires_at, grant.expires_at, 'not extended');
    const request = await call('GET', `/v1/access/requests/${extension.access_request_id}`, { as: 'carol' });
    assert.equal(request.status, 200, JSON.stringify(request.body));
    assert.equal(request.body.status, 'expired');
    assert.equal((await review(extension.access_request_id!, 'carol', 'approve')).status, 409, 'a lapsed request is not reviewed');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
  });

  it('an extension request lapses after the pending-request TTL, leaving the grant; asking again opens a new one', async () => {
    // OTHER_TENANT: requests lapse after 3 s; PowerUserAccess is at once up to 10 minutes, reviewed beyond.
    const account = freshAccount();
    const entitlement = (duration: number) => [{ target: target(account), role: 'PowerUserAccess', duration_seconds: duration }];
    const first = await ensure(entitlement(300), { as: 'oscar' });
    assert.equal(first.body.grants[0].change, 'activated', JSON.stringify(first.body));
    const grant = await grantReaching(first.body.grants[0].id, 'active', 'oscar');
    const asked = await ensure(entitlement(1200), { as: 'oscar', reason: 'longer' });
    const extension = asked.body.grants[0];
    assert.equal(extension.change, 'requested', JSON.stringify(extension));
    assert.equal(extension.status, 'active');
    assert.equal(extension.expires_at, grant.expires_at);
    const lapsed = await eventually('the extension request to lapse', async () => {
      const r = await call('GET', `/v1/access/requests/${extension.access_request_id}`, { as: 'oscar', tenant: OTHER_TENANT.id });
      return r.status === 200 && r.body.status === 'expired' ? r.body : undefined;
    });
    assert.equal(lapsed.grants[0].status, 'active');
    assert.equal(lapsed.grants[0].expires_at, grant.expires_at, 'the grant is as it was');
    const again = await ensure(entitlement(1200), { as: 'oscar', reason: 'longer' });
    assert.equal(again.body.grants[0].change, 'requested', 'a lapsed extension does not answer: a new one opens');
    assert.notEqual(again.body.grants[0].access_request_id, extension.access_request_id);
    assert.equal((await call('POST', `/v1/access/grants/${grant.id}/revoke`, { as: 'oscar', body: {} })).status, 200);
  });
});

describe('break-glass', function () {
  this.timeout(180_000);

  it('needs a reason (400), is refused to whoever is not on call (403) and beyond one hour (403 with the notice)', async () => {
    const account = freshAccount();
    const blank = await breakGlass(account, { reason: '  ' });
    assert.equal(blank.status, 400, JSON.stringify(blank.body));
    assert.equal(blank.body.code, 'invalid_request');
    assert.match(JSON.stringify(blank.body), /break_glass/);

    const alice = await breakGlass(account, { as: 'alice' });
    assert.equal(alice.status, 403, JSON.stringify(alice.body));
    assert.equal(alice.body.code, 'forbidden');

    const long = await breakGlass(account, { duration: 7200 });
    assert.equal(long.status, 403, JSON.stringify(long.body));
    assert.ok(long.body.notices.some((n: string) => /one hour/i.test(n)), JSON.stringify(long.body.notices));
  });

  it('a dry run says what would happen and starts nothing', async () => {
    const account = freshAccount();
    const dry = await breakGlass(account, { dryRun: true });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.equal(dry.body.grants[0].change, 'activated');
    assert.ok(dry.body.grants[0].diagnostics.some((d: { code: string }) => d.code === 'break_glass'));
    const grants = await call('GET', `/v1/access/grants?target=${target(account)}`, { as: 'olga' });
    assert.deepEqual(grants.body.grants, []);
  });

  it('is active at once, announced, and its follow-up request acknowledged by approval', async () => {
    const account = freshAccount();
    const reply = await breakGlass(account);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = reply.body.grants[0];
    assert.equal(grant.change, 'activated');
    assert.equal(grant.approved, true);
    const warning = grant.diagnostics.find((d: { code: string }) => d.code === 'break_glass');
    assert.equal(warning?.level, 'warning', JSON.stringify(grant.diagnostics));
    assert.match(grant.access_request_id, UUID);
    await grantReaching(grant.id, 'active', 'olga');
    await eventually('the break_glass webhook', async () =>
      current().webhooks.received.find((r) => r.path === '/oncall' && r.body.text.includes(`AWS::Account::${account}`)),
    );

    const listed = await eventually('carol to see the follow-up request', async () => {
      const r = await call('GET', '/v1/access/requests?status=pending', { as: 'carol' });
      return r.body.requests?.find((x: { id: string }) => x.id === grant.access_request_id);
    });
    assert.equal(listed.grants[0].id, grant.id);
    const acknowledged = await review(grant.access_request_id, 'carol', 'approve');
    assert.equal(acknowledged.status, 200, JSON.stringify(acknowledged.body));
    assert.equal(acknowledged.body.status, 'approved');
    assert.equal((await grantReaching(grant.id, 'active', 'olga')).expires_at !== null, true);
    assert.equal(await assignmentsOf('olga', account, 'AdministratorAccess'), 1);
    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { as: 'olga', body: {} });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await closed(grant.id);
    await recordHistory('break-glass-acknowledged-revoke', grant.id);
  });

  it('on a pending request, a permitted break-glass ensure activates at once and supersedes the request, visibly', async () => {
    const account = freshAccount();
    const asked = await ensure(admin(account, 1800), { as: 'otto', reason: 'planned change' });
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const pending = asked.body.grants[0];
    assert.deepEqual([pending.change, pending.status], ['requested', 'pending']);

    const glass = await breakGlass(account, { as: 'otto' });
    assert.equal(glass.status, 200, JSON.stringify(glass.body));
    const grant = glass.body.grants[0];
    assert.deepEqual([grant.change, grant.status, grant.id], ['activated', 'provisioning', pending.id], JSON.stringify(grant));
    assert.notEqual(grant.access_request_id, pending.access_request_id, 'the break-glass follow-up is the request reviewers now see');
    const superseded = grant.diagnostics.find((d: { code: string }) => d.code === 'request_superseded');
    assert.ok(superseded && superseded.access_request_id === pending.access_request_id, JSON.stringify(grant.diagnostics));
    await grantReaching(grant.id, 'active', 'otto');
    assert.equal(await assignmentsOf('otto', account, 'AdministratorAccess'), 1);
    const before = await call('GET', `/v1/access/requests/${pending.access_request_id}`, { as: 'otto' });
    assert.equal(before.body.status, 'withdrawn', 'the pending request no longer waits for reviewers');
    const queue = await call('GET', '/v1/access/requests?status=pending', { as: 'carol' });
    assert.ok(!queue.body.requests.some((r: { id: string }) => r.id === pending.access_request_id));
    assert.ok(queue.body.requests.some((r: { id: string }) => r.id === grant.access_request_id), 'the break-glass use waits for acknowledgement');
  });

  it('a denied break-glass use revokes the grant at once', async () => {
    const account = freshAccount();
    const reply = await breakGlass(account);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = reply.body.grants[0];
    await grantReaching(grant.id, 'active', 'olga');
    const denied = await review(grant.access_request_id, 'carol', 'deny');
    assert.equal(denied.status, 200, JSON.stringify(denied.body));
    assert.equal(denied.body.status, 'denied');
    await grantReaching(grant.id, 'revoked', 'olga');
    await eventually('the assignment to be gone', async () => ((await assignmentsOf('olga', account, 'AdministratorAccess')) === 0 ? true : undefined));
    await closed(grant.id);
    await recordHistory('break-glass-denied', grant.id);
  });
});

describe('a follow-up is reviewed on its own terms', function () {
  this.timeout(120_000);
  let api: PolicyApi;

  // Engineering may review AdministratorAccess of up to an hour.
  before(async () => {
    api = await startApiWithPolicies(
      '@id("engineering-reviews-short-admin")\npermit (principal in Group::"engineering", action == Action::"review", resource)\nwhen { context.role == "AdministratorAccess" && context.duration_seconds <= 3600 };\n',
    );
  });
  after(() => api?.stop());

  const reviewHere = (id: string, as: 'bob', decision: 'approve' | 'deny') => api.call('POST', `/v1/access/requests/${id}/review`, { as, body: { decision } });

  it('an extension is authorised for review with its own duration, not the grant’s first', async () => {
    const account = freshAccount();
    const grant = await activeAdminGrant(account, 3600);
    const extension = await extensionOf(grant, account, 12 * 3600);
    // bob may review an hour of AdministratorAccess, so he may not approve twelve.
    const refused = await reviewHere(extension.access_request_id!, 'bob', 'approve');
    assert.equal(refused.status, 404, JSON.stringify(refused.body));
    const still = await grantReaching(grant.id, 'active');
    assert.equal(still.expires_at, grant.expires_at, 'not extended');
    assert.equal((await call('GET', `/v1/access/requests/${extension.access_request_id}`, { as: 'alice' })).body.status, 'pending');

    // The positive control: an extension to an hour is his to review.
    const other = freshAccount();
    const short = await activeAdminGrant(other, 1800);
    const hour = await extensionOf(short, other, 3600);
    const approved = await reviewHere(hour.access_request_id!, 'bob', 'approve');
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
  });
});
