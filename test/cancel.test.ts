// An operator's "Request Cancellation" in the Temporal Web UI (or `temporal workflow cancel`) on a
// grant's workflow: a revoke, in every state the grant can be in.
import assert from 'node:assert/strict';
import type { GrantView } from '../src/domain/grant';
import { grantWorkflowId } from '../src/domain/grant';
import { assignmentsOf, call, current, ensure, eventually, FAULTS_TENANT, freshAccount, grantReaching, recordHistory, target, TENANT } from './support/world';

/** What the Web UI's button does: a cancellation request to the grant's workflow. */
async function cancelInWebUi(tenantId: string, principalId: string, account: string, role: string): Promise<string> {
  const handle = current().temporal.workflow.getHandle(grantWorkflowId({ tenantId, principalId, target: target(account), role }));
  await handle.cancel();
  return (await handle.describe()).runId;
}

function assertRevokedByOperator(grant: GrantView): void {
  const revoked = grant.diagnostics.find((d) => d.code === 'revoked');
  assert.ok(revoked, JSON.stringify(grant.diagnostics));
  assert.match(revoked.message, /operator.*workflow was cancelled/);
}

/** How the grant's run ended, as the Web UI lists it. */
async function runStatus(tenantId: string, principalId: string, account: string, role: string): Promise<string> {
  const handle = current().temporal.workflow.getHandle(grantWorkflowId({ tenantId, principalId, target: target(account), role }));
  return eventually('the run to close', async () => {
    const { status } = await handle.describe();
    return status.name === 'RUNNING' ? undefined : status.name;
  });
}

describe('cancelling a grant’s workflow in the Web UI', function () {
  this.timeout(120_000);
  afterEach(() => current().faults.reset());

  it('of an active grant revokes it: the assignment is removed and the run completes as revoked', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    await grantReaching(body.grants[0].id, 'active');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);

    await cancelInWebUi(TENANT.id, 'alice', account, 'ReadOnlyAccess');
    const revoked = await grantReaching(body.grants[0].id, 'revoked');
    assertRevokedByOperator(revoked);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    assert.equal(await runStatus(TENANT.id, 'alice', account, 'ReadOnlyAccess'), 'COMPLETED');
    await recordHistory('cancel-active', revoked.id);
  });

  it('of a pending grant closes its request as revoked, with nothing to remove', async () => {
    const account = freshAccount();
    const reply = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'deploy fix' });
    const pending = reply.body.grants[0];
    assert.equal(pending.change, 'requested', JSON.stringify(reply.body));

    await cancelInWebUi(TENANT.id, 'alice', account, 'AdministratorAccess');
    const revoked = await grantReaching(pending.id, 'revoked');
    assertRevokedByOperator(revoked);
    const review = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'approve' } });
    assert.equal(review.status, 409, 'a cancelled request can no longer be approved');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
    await runStatus(TENANT.id, 'alice', account, 'AdministratorAccess');
    await recordHistory('cancel-pending', revoked.id);
  });

  it('while the assignment is being created lets the creation finish, then removes it', async () => {
    const account = freshAccount();
    const faults = current().faults;
    // AWS answers IN_PROGRESS to every status poll: the creation is in flight until reset.
    await faults.on('CreateAccountAssignment', { inProgressPolls: 1000 });
    const reply = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }], { as: 'fay' });
    assert.equal(reply.body.grants[0].change, 'activated', JSON.stringify(reply.body));
    await eventually('two status polls', async () => ((await faults.count('DescribeAccountAssignmentCreationStatus')) >= 2 ? true : undefined));

    await cancelInWebUi(FAULTS_TENANT.id, 'fay', account, 'ReadOnlyAccess');
    await faults.reset(); // AWS finishes the creation
    const revoked = await grantReaching(reply.body.grants[0].id, 'revoked', 'fay', 90_000);
    assertRevokedByOperator(revoked);
    assert.equal(await assignmentsOf('fay', account, 'ReadOnlyAccess'), 0, 'what the creation made is removed');
    assert.equal(await runStatus(FAULTS_TENANT.id, 'fay', account, 'ReadOnlyAccess'), 'COMPLETED');
    await recordHistory('cancel-provisioning', revoked.id);
  });
});
