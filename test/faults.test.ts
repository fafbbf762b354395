// Faults at the provider: the faults tenant's AWS calls go through test/support/fault-proxy.ts,
// which answers per operation with what IAM Identity Center does on a bad day.
import assert from 'node:assert/strict';
import type { GrantView } from '../src/domain/grant';
import type { FaultRule } from './support/fault-proxy';
import { assignmentsOf, call, current, ensure, eventually, freshAccount, grantReaching, target } from './support/world';

const ROLE = 'ReadOnlyAccess';

async function activate(account: string, durationSeconds = 600): Promise<GrantView> {
  const reply = await ensure([{ target: target(account), role: ROLE, duration_seconds: durationSeconds }], { as: 'fay' });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(reply.body.grants[0].change, 'activated');
  return reply.body.grants[0];
}

async function grantOf(id: string): Promise<GrantView> {
  const reply = await call<GrantView>('GET', `/v1/access/grants/${id}`, { as: 'fay' });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body;
}

describe('faults at the provider', function () {
  this.timeout(120_000);
  const proxy = () => current().faults;
  beforeEach(() => proxy().reset());
  afterEach(() => proxy().reset());

  it('status polling waits through IN_PROGRESS: the grant stays provisioning until AWS reports SUCCEEDED', async () => {
    const account = freshAccount();
    await proxy().on('CreateAccountAssignment', { inProgressPolls: 1000 });
    const grant = await activate(account);
    await eventually('two status polls', async () => ((await proxy().count('DescribeAccountAssignmentCreationStatus')) >= 2 ? true : undefined));
    const waiting = await grantOf(grant.id);
    assert.equal(waiting.status, 'provisioning');
    assert.equal(waiting.provisioning_status, 'pending');
    assert.equal((await proxy().stats()).creationsInFlight, 1);

    await proxy().reset(); // AWS finishes the creation
    const active = await grantReaching(grant.id, 'active', 'fay');
    assert.equal(active.provisioning_status, 'successful');
    assert.equal(await assignmentsOf('fay', account, ROLE), 1);
  });

  it('a FAILED status after IN_PROGRESS polls ends the grant with the provider reason, and leaves no assignment', async () => {
    const account = freshAccount();
    const reason = 'Received a 404 status error: Not supported account.';
    await proxy().on('CreateAccountAssignment', { inProgressPolls: 2, failureReason: reason, times: 1 });
    const grant = await activate(account);
    const closed = await grantReaching(grant.id, 'revoked', 'fay');
    assert.equal(closed.provisioning_status, 'failed');
    const failure = closed.diagnostics.find((d) => d.code === 'provisioning_failed');
    assert.equal(failure?.level, 'error', JSON.stringify(closed.diagnostics));
    assert.ok(failure.message.includes(reason), failure.message);
    assert.equal(await proxy().count('DescribeAccountAssignmentCreationStatus'), 3, 'two IN_PROGRESS polls, then FAILED');
    assert.equal(await proxy().count('CreateAccountAssignment'), 1, 'a FAILED creation is not retried');
    assert.equal((await proxy().stats()).creationsInFlight, 0);
    // The emulator did create it (the FAILED was injected): the failed grant removes what may exist.
    await eventually('no assignment', async () => ((await assignmentsOf('fay', account, ROLE)) === 0 ? true : undefined));
  });

  it('a creation that reached AWS before its attempt failed is the grant’s own: not taken for a pre-existing one, and removed at expiry', async () => {
    const account = freshAccount();
    // The creation is accepted, then every status poll of the first attempt is cut off (the SDK's
    // five tries). The retried attempt finds the assignment in place: only the look recorded
    // before the creation tells it that the grant made it.
    await proxy().on('CreateAccountAssignment', { inProgressPolls: 1, times: 1 });
    await proxy().on('DescribeAccountAssignmentCreationStatus', { drop: true, times: 5 });
    const grant = await activate(account, 4);
    const active = await grantReaching(grant.id, 'active', 'fay', 90_000);
    assert.ok(!active.diagnostics.some((d) => d.code === 'assignment_preexisted'), JSON.stringify(active.diagnostics));
    assert.equal(await proxy().count('CreateAccountAssignment'), 1);
    assert.ok((await proxy().count('DescribeAccountAssignmentCreationStatus')) >= 5);
    assert.equal(await assignmentsOf('fay', account, ROLE), 1);

    await grantReaching(grant.id, 'expired', 'fay', 60_000);
    assert.equal(await assignmentsOf('fay', account, ROLE), 0);
  });

  const transient: [string, string, FaultRule, number][] = [
    ['throttling (retried by the SDK)', 'CreateAccountAssignment', { error: 'ThrottlingException', times: 3 }, 4],
    ['conflicts (retried by Temporal)', 'CreateAccountAssignment', { error: 'ConflictException', times: 2 }, 3],
    ['HTTP 500', 'CreateAccountAssignment', { status: 500, times: 3 }, 4],
    // The provisioning activity looks once (the SDK retries the 503s: 4 calls); its creation that
    // follows at once does not look again.
    ['HTTP 503 on the existence check', 'ListAccountAssignments', { status: 503, times: 3 }, 4],
    ['dropped connections', 'CreateAccountAssignment', { drop: true, times: 2 }, 3],
    ['slow answers', 'ListAccountAssignments', { delayMs: 1000, times: 2 }, 1],
  ];
  for (const [what, op, rule, calls] of transient) {
    it(`${what}: retried until the grant is active, with exactly one assignment`, async () => {
      const account = freshAccount();
      await proxy().on(op, rule);
      const grant = await activate(account);
      const active = await grantReaching(grant.id, 'active', 'fay', 90_000);
      assert.equal(active.provisioning_status, 'successful');
      assert.equal(await assignmentsOf('fay', account, ROLE), 1);
      assert.equal(await proxy().count(op), calls, `${op} calls`);
    });
  }

  it('when deletion keeps failing, the grant stays active with a diagnostic until the assignment is gone, then expires', async () => {
    const account = freshAccount();
    const grant = await activate(account, 2);
    await grantReaching(grant.id, 'active', 'fay');
    await proxy().on('DeleteAccountAssignment', { status: 500 });
    const retrying = await eventually(
      'a deprovisioning_retrying diagnostic',
      async () => {
        const g = await grantOf(grant.id);
        return g.diagnostics.some((d) => d.code === 'deprovisioning_retrying') ? g : undefined;
      },
      60_000,
    );
    assert.equal(retrying.status, 'active', 'not expired while the assignment exists');
    assert.ok(Date.parse(retrying.expires_at!) < Date.now());
    const diagnostic = retrying.diagnostics.find((d) => d.code === 'deprovisioning_retrying')!;
    assert.equal(diagnostic.level, 'warning');
    assert.match(diagnostic.message, /still retrying/);
    assert.equal(await assignmentsOf('fay', account, ROLE), 1);
    assert.ok((await proxy().count('DeleteAccountAssignment')) > 1);

    await proxy().reset(); // AWS recovers
    const expired = await grantReaching(grant.id, 'expired', 'fay', 90_000);
    assert.equal(await assignmentsOf('fay', account, ROLE), 0);
    assert.ok(!expired.diagnostics.some((d) => d.code === 'deprovisioning_retrying'), JSON.stringify(expired.diagnostics));
  });
});
