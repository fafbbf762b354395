// Drift: the reconciliation workflow against what moto holds, and the per-tenant Schedule that runs it.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { env, loadConfig } from '../src/config';
import { ensureReconcileSchedules, reconcileScheduleId } from '../src/schedules';
import type { ReconcileReport, reconcileWorkflow } from '../src/workflows/reconcile';
import {
  assignDirectly,
  assignmentsOf,
  call,
  current,
  ensure,
  eventually,
  freshAccount,
  grantReaching,
  OTHER_TENANT,
  recordHistory,
  target,
  TENANT,
  unassignDirectly,
  userIdOf,
} from './support/world';

async function reconcile(tenantId = TENANT.id): Promise<ReconcileReport> {
  return current().temporal.workflow.execute<typeof reconcileWorkflow>('reconcileWorkflow', {
    workflowId: `reconcile-test/${randomUUID()}`,
    taskQueue: env.taskQueue,
    args: [{ tenantId }],
  });
}

async function activeGrant(account: string, role = 'ReadOnlyAccess', durationSeconds = 600) {
  const { body } = await ensure([{ target: target(account), role, duration_seconds: durationSeconds }]);
  return grantReaching(body.grants[0].id, 'active');
}

describe('reconciliation', function () {
  this.timeout(180_000);

  it('re-creates, through the grant, an assignment deleted behind our back; the grant stays active', async () => {
    const account = freshAccount();
    const grant = await activeGrant(account);
    await unassignDirectly('alice', account, 'ReadOnlyAccess');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);

    const report = await reconcile();
    const entry = report.restored.find((r) => r.grantId === grant.id);
    assert.equal(entry?.outcome, 'restored', JSON.stringify(report.restored));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
    const after = await grantReaching(grant.id, 'active');
    assert.equal(after.expires_at, grant.expires_at, 'restoring does not extend the grant');
    assert.ok(after.diagnostics.some((d) => d.code === 'assignment_restored'), JSON.stringify(after.diagnostics));

    // The grant still owns what it re-created: revoking removes it.
    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { body: { reason: 'done' } });
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    await recordHistory('reconcile-restore', grant.id);
  });

  it('leaves an assignment that is present alone', async () => {
    const account = freshAccount();
    const grant = await activeGrant(account);
    const report = await reconcile();
    assert.equal(report.restored.find((r) => r.grantId === grant.id), undefined);
    assert.equal(report.removed.find((r) => r.accountId === account), undefined);
    assert.equal(report.foreign.find((a) => a.accountId === account), undefined, 'a grant’s own assignment is not foreign');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
  });

  it('removes an assignment with our ids that came back after its grant expired', async () => {
    const account = freshAccount();
    const grant = await activeGrant(account, 'ReadOnlyAccess', 3);
    await grantReaching(grant.id, 'expired');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    await assignDirectly('alice', account, 'ReadOnlyAccess');

    const report = await reconcile();
    const entry = report.removed.find((r) => r.grantId === grant.id);
    assert.equal(entry?.removed, true, JSON.stringify(report.removed));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
  });

  it('never removes an assignment that pre-existed the grant, nor one a newer grant of the key holds', async () => {
    const preexisting = freshAccount();
    await assignDirectly('alice', preexisting, 'ReadOnlyAccess');
    const kept = await activeGrant(preexisting, 'ReadOnlyAccess', 3);
    assert.ok(kept.diagnostics.some((d) => d.code === 'assignment_preexisted'));
    await grantReaching(kept.id, 'expired');

    const reused = freshAccount();
    const first = await activeGrant(reused, 'ReadOnlyAccess', 3);
    await grantReaching(first.id, 'expired');
    const second = await activeGrant(reused);
    assert.notEqual(second.id, first.id);

    const report = await reconcile();
    assert.equal(report.removed.find((r) => r.accountId === preexisting || r.accountId === reused), undefined, JSON.stringify(report.removed));
    assert.equal(await assignmentsOf('alice', preexisting, 'ReadOnlyAccess'), 1);
    assert.equal(await assignmentsOf('alice', reused, 'ReadOnlyAccess'), 1);
    assert.ok(report.foreign.some((a) => a.accountId === preexisting), 'the pre-existing one is reported as not ours');
  });

  it('reports, and leaves in place, an assignment it did not create', async () => {
    const account = freshAccount();
    await activeGrant(account);
    await assignDirectly('bob', account, 'ReadOnlyAccess');
    const bob = await userIdOf('bob');
    const alice = await userIdOf('alice');

    const report = await reconcile();
    const found = report.foreign.filter((a) => a.accountId === account);
    assert.deepEqual(
      found.map((a) => ({ principalType: a.principalType, principalId: a.principalId, permissionSetName: a.permissionSetName })),
      [{ principalType: 'USER', principalId: bob, permissionSetName: 'ReadOnlyAccess' }],
      `reported only bob's, not alice's (${alice}) which her grant holds`,
    );
    assert.ok(report.foreignTotal >= found.length);
    assert.equal(await assignmentsOf('bob', account, 'ReadOnlyAccess'), 1, 'still there');
    assert.equal(report.removed.find((r) => r.accountId === account), undefined);
  });

  it('looks only at its own tenant', async () => {
    const account = freshAccount();
    await activeGrant(account);
    await assignDirectly('bob', account, 'ReadOnlyAccess');
    const other = await reconcile(OTHER_TENANT.id);
    assert.equal(other.tenantId, OTHER_TENANT.id);
    assert.equal(other.foreign.find((a) => a.accountId === account), undefined, 'not an account of the other tenant');
    assert.equal(other.restored.find((r) => r.accountId === account), undefined);
    const own = await reconcile();
    assert.ok(own.foreign.some((a) => a.accountId === account));
  });
});

describe('reconciliation schedule', function () {
  this.timeout(180_000);
  const config = () => loadConfig(current().stack.configPath);

  const deleteSchedules = async () => {
    for (const tenant of config().tenants) await current().temporal.schedule.getHandle(reconcileScheduleId(tenant.id)).delete().catch(() => undefined);
  };
  // Workers that other tests run as processes (on task queues of their own) set the same
  // Schedules up at their start-up; this test starts from none, as a first deployment does.
  before(deleteSchedules);
  after(deleteSchedules);

  it('is created once per tenant at start-up, updated to the config, and runs the reconciliation', async () => {
    const { temporal } = current();
    await ensureReconcileSchedules(temporal, config());
    await ensureReconcileSchedules(temporal, config()); // a second start-up changes nothing
    const handle = temporal.schedule.getHandle(reconcileScheduleId(TENANT.id));
    const described = await handle.describe();
    assert.deepEqual(described.spec.intervals?.map((i) => i.every), [300_000], 'the default interval: five minutes');
    assert.equal(described.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(described.action.workflowType, 'reconcileWorkflow');
    assert.deepEqual(described.action.args, [{ tenantId: TENANT.id }]);
    await temporal.schedule.getHandle(reconcileScheduleId(OTHER_TENANT.id)).describe();

    const changed = config();
    changed.tenants[0].reconcile_interval_seconds = 60;
    await ensureReconcileSchedules(temporal, changed);
    assert.deepEqual((await handle.describe()).spec.intervals?.map((i) => i.every), [60_000]);

    await handle.trigger();
    const action = await eventually('the schedule to start a run', async () => (await handle.describe()).info.recentActions[0]?.action);
    const report: ReconcileReport = await temporal.workflow.getHandle(action.workflow.workflowId, action.workflow.firstExecutionRunId).result();
    assert.equal(report.tenantId, TENANT.id);
    assert.ok(report.grantsChecked > 0);
  });
});
