// Access requests as first-class objects (issue 12 §1, §2, §4, §5), through HTTP on the real stack.
import assert from 'node:assert/strict';
import { grantWorkflowId, type GrantView } from '../src/domain/grant';
import {
  call,
  current,
  ensure,
  eventually,
  freshAccount,
  grantReaching,
  recordHistory,
  target,
  TENANT,
  TWO_APPROVALS_ACCOUNT,
} from './support/world';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** alice asks for AdministratorAccess (reviewed) on `account`. */
async function adminRequest(account: string, reason = 'deploy fix'): Promise<GrantView> {
  const reply = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(reply.body.grants[0].change, 'requested', JSON.stringify(reply.body));
  return reply.body.grants[0];
}

const review = (id: string, as: 'alice' | 'bob' | 'carol' | 'dave', decision: 'approve' | 'deny', comment?: string) =>
  call('POST', `/v1/access/requests/${id}/review`, { as, body: { decision, ...(comment ? { comment } : {}) } });

/** The ids in `as`'s list, following every cursor. */
async function listedIds(as: 'alice' | 'bob' | 'carol', query: string): Promise<string[]> {
  const reply = await call('GET', `/v1/access/requests?${query}`, { as });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body.requests.map((r: { id: string }) => r.id);
}

/** Once the grant's run has completed (its notifications sent): a recorded history is then whole. */
const closed = (grantId: string) =>
  eventually('the grant’s run to complete', async () =>
    (await current().temporal.workflow.count(`AccessGrantId = '${grantId}' AND ExecutionStatus = 'Completed'`)).count > 0 ? true : undefined,
  60_000);

const reviewerWebhooksAbout = (account: string) =>
  current().webhooks.received.filter((r) => r.path === '/reviewers' && r.body.text.includes(`AWS::Account::${account}`));

describe('access requests', function () {
  this.timeout(180_000);

  it('one ensure call with two reviewed roles makes one request covering both; a repeat answers it with change none', async () => {
    const account = freshAccount();
    const entitlements = [
      { target: target(account), role: 'AdministratorAccess', duration_seconds: 600 },
      { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 },
    ];
    // ReadOnlyAccess auto-activates for everyone: a second account's AdministratorAccess is the second reviewed role.
    const other = freshAccount();
    const reply = await ensure([entitlements[0], { target: target(other), role: 'AdministratorAccess', duration_seconds: 600 }, entitlements[1]], { reason: 'incident' });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const [a, b, ro] = reply.body.grants;
    assert.match(a.access_request_id!, UUID);
    assert.equal(a.access_request_id, b.access_request_id, 'one request per call');
    assert.equal(ro.access_request_id, null, 'an auto-activated grant has none');

    const again = await ensure([entitlements[0]], { reason: 'incident' });
    assert.equal(again.body.grants[0].change, 'none');
    assert.equal(again.body.grants[0].access_request_id, a.access_request_id);

    const one = await call('GET', `/v1/access/requests/${a.access_request_id}`, { as: 'carol' });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.status, 'pending');
    assert.equal(one.body.principal_id, 'alice');
    assert.equal(one.body.principal_email, 'alice@example.com');
    assert.equal(one.body.approvals_required, 1);
    assert.deepEqual(one.body.approvals, []);
    assert.equal(one.body.denial, null);
    assert.equal(one.body.justification.reason, 'incident');
    assert.ok(Date.parse(one.body.expires_at) > Date.now(), 'the lapse time is given');
    assert.deepEqual(one.body.grants.map((g: GrantView) => g.id).sort(), [a.id, b.id].sort());

    const approved = await review(a.access_request_id!, 'carol', 'approve', 'ok');
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    assert.deepEqual(approved.body.approvals.map((x: { reviewer_id: string }) => x.reviewer_id), ['carol']);
    for (const g of approved.body.grants) assert.ok(['provisioning', 'active'].includes(g.status), `grant ${g.status}, not the stale pending`);
    await grantReaching(a.id, 'active');
    await grantReaching(b.id, 'active');
  });

  it('a review that reached only some grants (cut off half-way) is completed by sending it again', async () => {
    const [one, two] = [freshAccount(), freshAccount()];
    const reply = await ensure(
      [one, two].map((a) => ({ target: target(a), role: 'AdministratorAccess', duration_seconds: 600 })),
      { reason: 'two accounts' },
    );
    const [a, b] = reply.body.grants;
    const id = a.access_request_id!;
    // carol's approval delivered to the first grant's workflow only, as when the API died between the two.
    const workflowId = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: a.target, role: a.role });
    await current().temporal.workflow.getHandle(workflowId).executeUpdate('review', { args: [{ decision: 'approve', reviewerId: 'carol', accessRequestId: id }] });
    assert.equal((await grantReaching(b.id, 'pending')).approved, false);

    const retried = await review(id, 'carol', 'approve');
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal(retried.body.status, 'approved');
    assert.deepEqual(retried.body.approvals.map((x: { reviewer_id: string }) => x.reviewer_id), ['carol'], 'carol counts once');
    for (const g of retried.body.grants) assert.ok(['provisioning', 'active'].includes(g.status), JSON.stringify(g));
    await grantReaching(a.id, 'active');
    await grantReaching(b.id, 'active');
  });

  it('lists what a reviewer may review and the caller’s own: status filter, mine, pagination, bad cursor', async () => {
    const first = await adminRequest(freshAccount());
    const second = await adminRequest(freshAccount());
    const ids = [first.access_request_id!, second.access_request_id!];

    const carol = await eventually('carol to see both requests', async () => {
      const listed = await listedIds('carol', 'status=pending');
      return ids.every((id) => listed.includes(id)) ? listed : undefined;
    });
    assert.ok(carol.indexOf(second.access_request_id!) < carol.indexOf(first.access_request_id!), 'newest first');
    assert.deepEqual((await listedIds('bob', 'status=pending')).filter((id) => ids.includes(id)), [], 'bob may review neither');
    const mine = await listedIds('alice', 'mine=true');
    assert.ok(ids.every((id) => mine.includes(id)), 'alice sees her own');
    assert.deepEqual((await listedIds('carol', 'mine=true')).filter((id) => ids.includes(id)), [], 'mine=true: only the caller’s own');
    assert.deepEqual((await listedIds('carol', 'status=denied')).filter((id) => ids.includes(id)), []);

    // Pages of one, following the cursor, give the same requests in the same order.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const reply: { status: number; body: any } = await call('GET', `/v1/access/requests?status=pending&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { as: 'carol' });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.ok(reply.body.requests.length <= 1);
      paged.push(...reply.body.requests.map((r: { id: string }) => r.id));
      cursor = reply.body.next_cursor;
    } while (cursor && paged.length < 200);
    assert.deepEqual(paged.filter((id) => ids.includes(id)), carol.filter((id) => ids.includes(id)));
    assert.equal(cursor, null, 'the last page says so');

    const garbage = await call('GET', '/v1/access/requests?cursor=not-a-cursor', { as: 'carol' });
    assert.equal(garbage.status, 400, JSON.stringify(garbage.body));
    assert.equal(garbage.body.code, 'invalid_request');
    const tooMany = await call('GET', '/v1/access/requests?limit=201', { as: 'carol' });
    assert.equal(tooMany.status, 400);

    const outsider = await call('GET', `/v1/access/requests/${first.access_request_id}`, { as: 'bob' });
    const unknown = await call('GET', '/v1/access/requests/6b0c3a9e-1111-4222-8333-944455556666', { as: 'bob' });
    assert.equal(outsider.status, 404);
    assert.deepEqual(outsider.body, unknown.body, 'nothing tells bob it exists');
    assert.equal((await call('GET', `/v1/access/requests/${first.access_request_id}`, { as: 'alice' })).status, 200);
  });

  it('a denial answers the request with its grants revoked', async () => {
    const pending = await adminRequest(freshAccount());
    const denied = await review(pending.access_request_id!, 'carol', 'deny', 'not today');
    assert.equal(denied.status, 200, JSON.stringify(denied.body));
    assert.equal(denied.body.status, 'denied');
    assert.equal(denied.body.denial.reviewer_id, 'carol');
    assert.equal(denied.body.denial.comment, 'not today');
    assert.equal(denied.body.grants[0].status, 'revoked');
    assert.equal(denied.body.grants[0].approved, false);
  });

  it('refuses with 403, naming them, a review of a request holding grants the reviewer may not review', async () => {
    const account = freshAccount();
    // platform-admins review AdministratorAccess; SecurityAudit is for the security group (policies/security-audit.cedar).
    const reply = await ensure(
      [
        { target: target(account), role: 'AdministratorAccess', duration_seconds: 600 },
        { target: target(account), role: 'SecurityAudit', duration_seconds: 600 },
      ],
      { reason: 'audit' },
    );
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const requestId = reply.body.grants[0].access_request_id!;
    const refused = await review(requestId, 'carol', 'approve');
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'forbidden');
    assert.match(refused.body.message, /SecurityAudit on AWS::Account::\d{12}/);
    assert.doesNotMatch(refused.body.message, /AdministratorAccess/);
    const still = await call('GET', `/v1/access/requests/${requestId}`, { as: 'alice' });
    assert.equal(still.body.status, 'pending', 'nothing was reviewed');
    // GET answers the same reviewer as review does: the request is theirs to see, with the grants it holds.
    const seen = await call('GET', `/v1/access/requests/${requestId}`, { as: 'carol' });
    assert.equal(seen.status, 200, JSON.stringify(seen.body));
    assert.deepEqual(seen.body.grants.map((g: { role: string }) => g.role).sort(), ['AdministratorAccess', 'SecurityAudit']);
    const queue = await call('GET', '/v1/access/requests?status=pending', { as: 'carol' });
    assert.ok(queue.body.requests.some((r: { id: string }) => r.id === requestId), 'and in their queue');
  });

  it('@approvals("2"): two distinct reviewers, never the requester, one counts once; approved is sent on the last', async () => {
    const reply = await ensure([{ target: target(TWO_APPROVALS_ACCOUNT), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'prod fix' });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = reply.body.grants[0];
    assert.equal(grant.change, 'requested');
    const required = grant.diagnostics.find((d) => d.code === 'review_required')!;
    assert.equal(required.approvals_required, 2, JSON.stringify(required));
    assert.match(required.message, /2 approvals/);
    assert.match(required.message, /lapses at/);
    const id = grant.access_request_id!;

    const first = await review(id, 'carol', 'approve', 'one');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.status, 'pending');
    assert.equal(first.body.approvals_required, 2);
    assert.deepEqual(first.body.approvals.map((a: { reviewer_id: string }) => a.reviewer_id), ['carol']);
    assert.equal(first.body.grants[0].status, 'pending');

    const twice = await review(id, 'carol', 'approve', 'one again');
    assert.equal(twice.status, 200, 'the same reviewer again is answered, and counts once');
    assert.equal(twice.body.status, 'pending');
    assert.equal(twice.body.approvals.length, 1);
    const own = await review(id, 'alice', 'approve');
    assert.equal(own.status, 403, 'the requester never counts');
    const requesters = () => current().webhooks.received.filter((r) => r.path === '/requesters' && r.body.text.includes(TWO_APPROVALS_ACCOUNT) && /approved/.test(r.body.text));
    assert.equal(requesters().length, 0, 'no approved webhook before the last approval');

    const second = await review(id, 'dave', 'approve', 'two');
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.status, 'approved');
    assert.deepEqual(second.body.approvals.map((a: { reviewer_id: string }) => a.reviewer_id), ['carol', 'dave']);
    assert.ok(['provisioning', 'active'].includes(second.body.grants[0].status));
    await eventually('the approved webhook', async () => (requesters().length === 1 ? true : undefined));
    await grantReaching(grant.id, 'active');
    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { body: { reason: 'done' } });
    assert.equal(revoked.status, 200);
    await closed(grant.id);
    await recordHistory('request-two-approvals-revoke', grant.id);
  });

  it('after a denial, the same ensure answers the denied grant and files nothing; a changed reason files a new request', async () => {
    const account = freshAccount();
    const pending = await adminRequest(account, 'curious');
    await eventually('the reviewers’ webhook', async () => (reviewerWebhooksAbout(account).length === 1 ? true : undefined));
    assert.equal((await review(pending.access_request_id!, 'carol', 'deny', 'no')).status, 200);
    await grantReaching(pending.id, 'revoked');

    const again = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'curious' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const [denied] = again.body.grants;
    assert.equal(denied.id, pending.id, 'the denied grant');
    assert.equal(denied.status, 'revoked');
    assert.equal(denied.approved, false);
    assert.equal(denied.change, 'none');
    assert.ok(denied.diagnostics.some((d) => d.code === 'denied'), JSON.stringify(denied.diagnostics));

    const changed = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'INC-42 outage' });
    assert.equal(changed.body.grants[0].change, 'requested', JSON.stringify(changed.body));
    const filed = changed.body.grants[0].access_request_id!;
    assert.notEqual(filed, pending.access_request_id);
    // Once the new request's message is in, the channel has delivered what came before it: the
    // denied request was announced once, and its grant's run, closed, sends nothing more.
    await eventually('the new request’s webhook', async () => (reviewerWebhooksAbout(account).some((w) => w.body.text.includes(filed)) ? true : undefined));
    const about = reviewerWebhooksAbout(account);
    assert.equal(about.length, 2, 'reviewers are not asked again about the denied request');
    assert.equal(about.filter((w) => w.body.text.includes(pending.access_request_id!)).length, 1);
  });

  it('withdrawal: the requester’s revoke of a pending request makes it withdrawn; reviewers’ lists drop it; a review is 409', async () => {
    const pending = await adminRequest(freshAccount());
    const id = pending.access_request_id!;
    await eventually('carol to see it', async () => ((await listedIds('carol', 'status=pending')).includes(id) ? true : undefined));
    const revoked = await call('POST', `/v1/access/grants/${pending.id}/revoke`, { body: { reason: 'not needed' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.status, 'revoked');
    const request = await call('GET', `/v1/access/requests/${id}`, { as: 'alice' });
    assert.equal(request.body.status, 'withdrawn', JSON.stringify(request.body));
    assert.equal(request.body.grants[0].status, 'revoked');
    assert.ok(!(await listedIds('carol', 'status=pending')).includes(id), 'gone from the pending list');
    assert.ok((await listedIds('alice', 'mine=true&status=withdrawn')).includes(id));
    const late = await review(id, 'carol', 'approve');
    assert.equal(late.status, 409, JSON.stringify(late.body));
    assert.equal(late.body.code, 'conflict');
  });
});

describe('outcomes a polling client sees', function () {
  this.timeout(180_000);
  const proxy = () => current().faults;
  beforeEach(() => proxy().reset());
  afterEach(() => proxy().reset());
  const ROLE = 'ReadOnlyAccess';

  it('a provisioning failure is answered to the same ensure (change none) instead of a new grant that fails again', async () => {
    const account = freshAccount();
    await proxy().on('CreateAccountAssignment', { inProgressPolls: 0, failureReason: 'Not supported account.', times: 1 });
    const first = await ensure([{ target: target(account), role: ROLE, duration_seconds: 600 }], { as: 'fay' });
    assert.equal(first.body.grants[0].change, 'activated', JSON.stringify(first.body));
    await grantReaching(first.body.grants[0].id, 'revoked', 'fay');

    const again = await ensure([{ target: target(account), role: ROLE, duration_seconds: 600 }], { as: 'fay' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const [failed] = again.body.grants;
    assert.equal(failed.id, first.body.grants[0].id, 'the failed grant, not a new one');
    assert.equal(failed.change, 'none');
    assert.equal(failed.provisioning_status, 'failed');
    assert.ok(failed.diagnostics.some((d) => d.code === 'provisioning_failed'));
    assert.equal(await proxy().count('CreateAccountAssignment'), 1, 'no second creation');
  });

  it('a longer duration asked while provisioning is kept: extended, then active for the longer duration', async () => {
    const account = freshAccount();
    await proxy().on('CreateAccountAssignment', { inProgressPolls: 1000 });
    const first = await ensure([{ target: target(account), role: ROLE, duration_seconds: 600 }], { as: 'fay' });
    const grant = first.body.grants[0];
    assert.equal(grant.change, 'activated');
    await eventually('the creation to be in flight', async () => ((await proxy().count('DescribeAccountAssignmentCreationStatus')) >= 1 ? true : undefined));

    const longer = await ensure([{ target: target(account), role: ROLE, duration_seconds: 1800 }], { as: 'fay' });
    assert.equal(longer.status, 200, JSON.stringify(longer.body));
    assert.equal(longer.body.grants[0].id, grant.id);
    assert.equal(longer.body.grants[0].change, 'extended');
    assert.equal(longer.body.grants[0].status, 'provisioning');
    assert.equal(longer.body.grants[0].duration_seconds, 1800);

    await proxy().reset(); // AWS finishes the creation
    const active = await grantReaching(grant.id, 'active', 'fay');
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 1_800_000);
    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { as: 'fay', body: {} });
    assert.equal(revoked.status, 200);
    await closed(grant.id);
    await recordHistory('provisioning-extended-revoke', grant.id);
  });
});
