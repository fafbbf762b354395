// Review, revoke, pending expiry, provider failure and the grants endpoints, through HTTP.
import assert from 'node:assert/strict';
import type { GrantView } from '../src/domain/grant';
import { grantWorkflowId } from '../src/domain/grant';
import { assertErrorShape, assignmentsOf, call, ensure, eventually, freshAccount, grantReaching, recordHistory, target, TENANT, temporalCli } from './support/world';

async function adminRequest(account: string): Promise<GrantView> {
  const reply = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'deploy fix' });
  assert.equal(reply.body.grants[0].change, 'requested', JSON.stringify(reply.body));
  return reply.body.grants[0];
}

describe('review', function () {
  this.timeout(120_000);

  it('approve activates the grant and provisions it', async () => {
    const account = freshAccount();
    const pending = await adminRequest(account);
    const reply = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, {
      as: 'carol',
      body: { decision: 'approve', comment: 'go ahead' },
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'approved');
    assert.equal(reply.body.grants[0].approved, true);
    const active = await grantReaching(pending.id, 'active');
    assert.ok(active.diagnostics.some((d) => d.code === 'approved' && /carol/.test(d.message)));
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 600_000, 'the clock starts at activation');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 1);

    const again = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'deny' } });
    assert.equal(again.status, 409, 'a decided request cannot be reviewed again');

    const revoked = await call('POST', `/v1/access/grants/${pending.id}/revoke`, { as: 'alice', body: { reason: 'done' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
    await recordHistory('request-approve-revoke', pending.id);
  });

  it('deny closes the request without access', async () => {
    const account = freshAccount();
    const pending = await adminRequest(account);
    const reply = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'deny', comment: 'no' } });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const closed = await grantReaching(pending.id, 'revoked');
    assert.equal(closed.approved, false);
    assert.ok(closed.diagnostics.some((d) => d.code === 'denied'));
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
    await recordHistory('request-deny', pending.id);
  });

  it('refuses self-review (403), and answers a reviewer the policy does not allow as for an id that does not exist (404)', async () => {
    const pending = await adminRequest(freshAccount());
    const own = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'alice', body: { decision: 'approve' } });
    assert.equal(own.status, 403);
    assert.equal(own.body.code, 'forbidden');
    const peer = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'bob', body: { decision: 'approve' } });
    const unknown = await call('POST', '/v1/access/requests/6b0c3a9e-1111-4222-8333-944455556666/review', { as: 'bob', body: { decision: 'approve' } });
    assert.equal(peer.status, 404, JSON.stringify(peer.body));
    assert.deepEqual(peer.body, unknown.body, 'nothing tells bob the request exists');
    const still = await grantReaching(pending.id, 'pending');
    assert.equal(still.approved, false);
  });

  it('an operator approves and revokes with `temporal workflow signal`, with the same outcome', async () => {
    const account = freshAccount();
    const pending = await adminRequest(account);
    const workflowId = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'AdministratorAccess' });
    const own = JSON.stringify({ reviewer: 'alice' });
    temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'approve', '--input', own]);
    temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'approve', '--input', JSON.stringify({ reviewer: 'carol', comment: 'ok' })]);
    const active = await grantReaching(pending.id, 'active');
    assert.ok(active.diagnostics.some((d) => d.code === 'approved' && /carol/.test(d.message)), 'the self-approval was ignored');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 1);
    temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'revoke', '--input', JSON.stringify({ revokedBy: 'carol', reason: 'drill' })]);
    await grantReaching(pending.id, 'revoked');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
  });

  it('answers 404 for an unknown request and 400 for a bad decision', async () => {
    const unknown = await call('POST', '/v1/access/requests/6b0c3a9e-1111-4222-8333-944455556666/review', { as: 'carol', body: { decision: 'approve' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'not_found');
    const pending = await adminRequest(freshAccount());
    const bad = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'maybe' } });
    assert.equal(bad.status, 400);
  });

  it('closes a pending request nobody reviewed in time', async () => {
    const reply = await ensure([{ target: target(freshAccount()), role: 'AdministratorAccess', duration_seconds: 600 }], { as: 'oscar' });
    assert.equal(reply.body.grants[0].change, 'requested', JSON.stringify(reply.body));
    const expired = await grantReaching(reply.body.grants[0].id, 'expired', 'oscar');
    assert.equal(expired.approved, false);
    assert.ok(expired.diagnostics.some((d) => d.code === 'request_expired'));
    await recordHistory('request-expire', expired.id);
  });
});

describe('revoke', function () {
  this.timeout(120_000);

  it('the grantee revokes and the assignment goes; others need policy', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    await grantReaching(body.grants[0].id, 'active');
    const stranger = await call('POST', `/v1/access/grants/${body.grants[0].id}/revoke`, { as: 'bob', body: {} });
    assert.equal(stranger.status, 404, 'a grant of someone else is not even visible without policy');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
    const reply = await call('POST', `/v1/access/grants/${body.grants[0].id}/revoke`, { as: 'alice', body: { reason: 'finished' } });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'revoked');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    const twice = await call('POST', `/v1/access/grants/${body.grants[0].id}/revoke`, { as: 'alice', body: {} });
    assert.equal(twice.status, 409);
  });

  it('a platform admin may revoke anyone’s grant', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }], { as: 'bob' });
    await grantReaching(body.grants[0].id, 'active', 'bob');
    const reply = await call('POST', `/v1/access/grants/${body.grants[0].id}/revoke`, { as: 'carol', body: { reason: 'audit' } });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'revoked');
    assert.equal(await assignmentsOf('bob', account, 'ReadOnlyAccess'), 0);
  });
});

describe('provider failure', function () {
  this.timeout(120_000);

  it('a permission set that does not exist ends as provisioning_status failed with a diagnostic', async () => {
    const reply = await ensure([{ target: target(freshAccount()), role: 'NoSuchPermissionSet', duration_seconds: 600 }], { as: 'oscar' });
    assert.equal(reply.body.grants[0].change, 'activated', JSON.stringify(reply.body));
    const closed = await grantReaching(reply.body.grants[0].id, 'revoked', 'oscar');
    assert.equal(closed.provisioning_status, 'failed');
    const failure = closed.diagnostics.find((d) => d.code === 'provisioning_failed');
    assert.ok(failure, JSON.stringify(closed.diagnostics));
    assert.equal(failure.level, 'error');
    assert.match(failure.message, /NoSuchPermissionSet/);
    await recordHistory('provisioning-failed', closed.id);
  });
});

describe('GET /v1/access/grants', function () {
  this.timeout(60_000);

  it("lists the caller's grants with filters, and never another tenant's", async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    const id = body.grants[0].id;
    await grantReaching(id, 'active');
    const mine = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}&status=active`);
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.body.grants.map((g: GrantView) => g.id), [id]);
    const none = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}&status=pending`);
    assert.deepEqual(none.body.grants, []);
    const bobs = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}`, { as: 'bob' });
    assert.deepEqual(bobs.body.grants, []);
    const bad = await call('GET', `/v1/access/grants?status=sideways`);
    assert.equal(bad.status, 400);

    const otherTenant = await call('GET', `/v1/access/grants/${id}`, { as: 'oscar' });
    assert.equal(otherTenant.status, 404);
    const otherList = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}`, { as: 'oscar' });
    assert.deepEqual(otherList.body.grants, []);
  });

  it('lists a page at a time: every grant once, the last page says so, and a cursor works only with its own filters', async () => {
    const account = freshAccount();
    const onAccount = `target=${encodeURIComponent(target(account))}`;
    // Three grants on one account: one revoked, then a new one of the same role, and a pending request.
    const first = await ensure(
      [
        { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 },
        { target: target(account), role: 'AdministratorAccess', duration_seconds: 600 },
      ],
      { reason: 'paging' },
    );
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const revoked = await call('POST', `/v1/access/grants/${first.body.grants[0].id}/revoke`, { body: {} });
    assert.equal(revoked.body.status, 'revoked', JSON.stringify(revoked.body));
    const again = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    const ids = [...first.body.grants.map((g) => g.id), again.body.grants[0].id];
    assert.equal(new Set(ids).size, 3);

    const pages = await eventually('all three grants listed', async () => {
      const seen: { grants: GrantView[]; next_cursor: string | null }[] = [];
      for (let cursor: string | null = ''; cursor !== null; ) {
        const reply: { status: number; body: { grants: GrantView[]; next_cursor: string | null } } = await call('GET', `/v1/access/grants?${onAccount}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        seen.push(reply.body);
        cursor = reply.body.next_cursor;
      }
      return seen.flatMap((p) => p.grants).length === 3 ? seen : undefined;
    });
    assert.deepEqual(pages.map((p) => p.grants.length), [2, 1]);
    assert.deepEqual(pages.flatMap((p) => p.grants.map((g) => g.id)).sort(), [...ids].sort(), 'every grant once');
    assert.equal(pages[1].next_cursor, null);

    const cursor = encodeURIComponent(pages[0].next_cursor!);
    const otherFilters = await call('GET', `/v1/access/grants?${onAccount}&status=active&limit=2&cursor=${cursor}`);
    assert.equal(otherFilters.status, 400, JSON.stringify(otherFilters.body));
    assertErrorShape(otherFilters, 'invalid_request');
    const made = await call('GET', `/v1/access/grants?${onAccount}&cursor=bm90LWEtY3Vyc29y`);
    assert.equal(made.status, 400, JSON.stringify(made.body));
    const tooMany = await call('GET', `/v1/access/grants?limit=101`);
    assert.equal(tooMany.status, 400, JSON.stringify(tooMany.body));
  });
});
