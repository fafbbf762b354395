// Drift: the reconciliation workflow against what moto holds, and the per-tenant Schedule that runs it.
import assert from 'node:assert/strict';
import { grantEvents, storedEvents } from './support/audit';
import { randomUUID } from 'node:crypto';
import { ProvisionPermissionSetCommand } from '@aws-sdk/client-sso-admin';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { env, loadConfig } from '../src/config';
import { grantWorkflowId } from '../src/domain/grant';
import { ensureReconcileSchedules, reconcileScheduleId } from '../src/schedules';
import type { ReconcileReport, reconcileWorkflow } from '../src/workflows/reconcile';
import {
  assignDirectly,
  assignmentsOf,
  call,
  current,
  ensure,
  eventually,
  FAULTS_TENANT,
  freshAccount,
  grantReaching,
  LISTED_TENANT,
  NEIGHBOUR_ACCOUNT,
  NEIGHBOUR_TENANT,
  OTHER_TENANT,
  permissionSetArnOf,
  recordHistory,
  recordRun,
  target,
  TENANT,
  unassignDirectly,
  userIdOf,
} from './support/world';

async function reconcile(tenantId = TENANT.id, workflowId = `reconcile-test/${randomUUID()}`): Promise<ReconcileReport> {
  return current().temporal.workflow.execute<typeof reconcileWorkflow>('reconcileWorkflow', {
    workflowId,
    taskQueue: env.taskQueue,
    args: [{ tenantId }],
  });
}

/** Ends the grant's run as an operator does from the Web UI: no cleanup runs. */
async function terminateGrant(tenantId: string, principalId: string, account: string, role: string): Promise<void> {
  await current().temporal.workflow.getHandle(grantWorkflowId({ tenantId, principalId, target: target(account), role })).terminate('test: operator terminates');
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
    const events = await grantEvents(grant.id, ['activated', 'assignment_restored', 'revoked', 'deprovisioned']);
    assert.deepEqual(events.find((e) => e.event.event === 'assignment_restored')!.event.actor, { type: 'system', id: 'reconciliation' });
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

  it('leaves an assignment made by hand after its grant expired, round after round', async () => {
    const account = freshAccount();
    const grant = await activeGrant(account, 'ReadOnlyAccess', 3);
    await grantReaching(grant.id, 'expired');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    await assignDirectly('alice', account, 'ReadOnlyAccess'); // an administrator's, not the grant's

    for (const round of [1, 2]) {
      const report = await reconcile();
      assert.equal(report.removed.find((r) => r.accountId === account), undefined, `round ${round}: ${JSON.stringify(report.removed)}`);
      assert.ok(report.foreign.some((a) => a.accountId === account), `round ${round}: reported as not ours`);
      assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1, `round ${round}`);
    }
  });

  it('removes, at the next round, the assignment of a grant terminated while active; once only', async () => {
    const account = freshAccount();
    const grant = await activeGrant(account);
    await terminateGrant(TENANT.id, 'alice', account, 'ReadOnlyAccess');
    const { runId } = await current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'ReadOnlyAccess' })).describe();

    const round = `reconcile-test/${randomUUID()}`;
    const report = await reconcile(TENANT.id, round);
    await recordRun('reconcile-removes-leftover', `WorkflowId = '${round}'`);
    await recordRun('leftover-removed', `WorkflowId = 'leftover-removed/${runId}'`);
    const entry = report.removed.find((r) => r.grantId === grant.id);
    assert.equal(entry?.removed, true, JSON.stringify(report.removed));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    // On record by the time the round has ended.
    const removal = (await storedEvents()).filter((e) => e.event.event === 'leaked_assignment_removed' && e.event.grant_id === grant.id);
    assert.equal(removal.length, 1);
    assert.deepEqual(removal[0].event.actor, { type: 'system', id: 'reconciliation' });
    assert.equal(removal[0].event.target, target(account));

    // What an administrator assigns afterwards is not the terminated grant's leftover.
    await assignDirectly('alice', account, 'ReadOnlyAccess');
    const next = await reconcile();
    assert.equal(next.removed.find((r) => r.accountId === account), undefined, JSON.stringify(next.removed));
    assert.ok(next.foreign.some((a) => a.accountId === account), 'reported as not ours');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
  });

  it('keeps an assignment made by hand after a terminated grant’s own was removed outside this service', async () => {
    const account = freshAccount();
    await activeGrant(account);
    await terminateGrant(TENANT.id, 'alice', account, 'ReadOnlyAccess');
    await unassignDirectly('alice', account, 'ReadOnlyAccess'); // an administrator removes it in the console
    const seen = await reconcile(); // a round finds it gone
    assert.equal(seen.removed.find((r) => r.accountId === account), undefined, JSON.stringify(seen.removed));
    await assignDirectly('alice', account, 'ReadOnlyAccess'); // later, an administrator assigns it by hand
    const next = await reconcile();
    assert.equal(next.removed.find((r) => r.accountId === account), undefined, `not the terminated grant's leftover: ${JSON.stringify(next.removed)}`);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
  });

  it('two tenants on one instance: each round looks only at its own accounts, and neither tenant may ask for the other’s', async () => {
    const { sso, stack } = current();
    const instanceArn = stack.instanceArnOf(NEIGHBOUR_TENANT.id);
    assert.equal(instanceArn, stack.instanceArnOf(LISTED_TENANT.id), 'the world puts both tenants on one instance');
    // Moto lists a provisioned permission set on its own account, the neighbour's: a round that
    // looked at every account the instance provisions to would read it.
    await sso.send(
      new ProvisionPermissionSetCommand({
        InstanceArn: instanceArn,
        PermissionSetArn: await permissionSetArnOf('PowerUserAccess', NEIGHBOUR_TENANT.id),
        TargetType: 'AWS_ACCOUNT',
        TargetId: NEIGHBOUR_ACCOUNT,
      }),
    );
    // The neighbour's own grant there, and an assignment its administrator made by hand.
    const reply = await ensure([{ target: target(NEIGHBOUR_ACCOUNT), role: 'ReadOnlyAccess', duration_seconds: 600 }], { as: 'nina' });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = await grantReaching(reply.body.grants[0].id, 'active', 'nina');
    await assignDirectly('nina', NEIGHBOUR_ACCOUNT, 'PowerUserAccess');

    // The other tenant's requester may not ask for it, whatever its policies say.
    const refused = await ensure([{ target: target(NEIGHBOUR_ACCOUNT), role: 'ReadOnlyAccess' }], { as: 'lena', dryRun: true });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));

    const listed = await reconcile(LISTED_TENANT.id);
    for (const [what, entries] of Object.entries({ restored: listed.restored, removed: listed.removed, foreign: listed.foreign })) {
      assert.deepEqual(entries.filter((a) => a.accountId === NEIGHBOUR_ACCOUNT), [], `the other tenant's round has no ${what} entry on the neighbour's account`);
    }
    const own = await reconcile(NEIGHBOUR_TENANT.id);
    assert.ok(
      own.foreign.some((a) => a.accountId === NEIGHBOUR_ACCOUNT && a.permissionSetName === 'PowerUserAccess'),
      `its own round reports the hand-made assignment: ${JSON.stringify(own.foreign)}`,
    );
    assert.deepEqual(own.removed.filter((r) => r.accountId === NEIGHBOUR_ACCOUNT), []);
    assert.equal(await assignmentsOf('nina', NEIGHBOUR_ACCOUNT, 'ReadOnlyAccess'), 1);
    assert.equal(await assignmentsOf('nina', NEIGHBOUR_ACCOUNT, 'PowerUserAccess'), 1);

    await unassignDirectly('nina', NEIGHBOUR_ACCOUNT, 'PowerUserAccess');
    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { as: 'nina', body: {} });
    assert.equal(revoked.body.status, 'revoked', JSON.stringify(revoked.body));
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

  // A round lists the pairs of its grants or its grantees' assignments, whichever names fewer
  // (docs/reliability.md): each way is reached below, and each sees what is there by hand.
  it('lists per user when its grants name no more users than pairs: reports, and leaves in place, a grantee’s assignment it did not create', async () => {
    const account = freshAccount();
    await activeGrant(account);
    // By hand: bob's on the pair of alice's grant, and alice's of another permission set.
    await assignDirectly('bob', account, 'ReadOnlyAccess');
    await assignDirectly('alice', account, 'PowerUserAccess');

    // The main tenant's grants are nearly all alice's, each on an account of its own: fewer users than pairs.
    const report = await reconcile();
    assert.equal(report.listing, 'users', `listed ${report.listed} ${report.listing}`);
    const found = report.foreign.filter((a) => a.accountId === account).map((a) => `${a.principalId} ${a.permissionSetName}`);
    const alice = await userIdOf('alice');
    assert.ok(found.includes(`${alice} PowerUserAccess`), `alice's elsewhere is seen: ${JSON.stringify(found)}`);
    assert.ok(!found.includes(`${alice} ReadOnlyAccess`), 'not the one alice’s grant holds');
    assert.ok(report.foreignTotal >= found.length);
    assert.equal(report.removed.find((r) => r.accountId === account), undefined);
    assert.equal(await assignmentsOf('bob', account, 'ReadOnlyAccess'), 1, 'still there');
    assert.equal(await assignmentsOf('alice', account, 'PowerUserAccess'), 1, 'still there');
    await unassignDirectly('alice', account, 'PowerUserAccess');
  });

  it('lists per pair when its grants name fewer pairs than users: reports, and leaves in place, bob’s assignment made by hand on that pair', async () => {
    // The neighbour tenant lists one account: nina and ned each hold ReadOnlyAccess there, one pair of two users.
    const grants = [];
    for (const user of ['nina', 'ned'] as const) {
      const reply = await ensure([{ target: target(NEIGHBOUR_ACCOUNT), role: 'ReadOnlyAccess', duration_seconds: 600 }], { as: user });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      // Their reads are paced (NEIGHBOUR_TENANT.readsPerMinute): more time than the default to see it.
      grants.push({ user, grant: await grantReaching(reply.body.grants[0].id, 'active', user, 120_000) });
    }
    // By hand, on that pair: bob's, who holds no grant there (nor is the tenant's).
    await assignDirectly('bob', NEIGHBOUR_ACCOUNT, 'ReadOnlyAccess', NEIGHBOUR_TENANT.id);

    const report = await reconcile(NEIGHBOUR_TENANT.id);
    assert.equal(report.listing, 'pairs', `listed ${report.listed} ${report.listing}`);
    assert.equal(report.listed, 1, 'the one pair of both grants');
    const found = report.foreign.filter((a) => a.accountId === NEIGHBOUR_ACCOUNT).map((a) => `${a.principalId} ${a.permissionSetName}`);
    const [bob, nina, ned] = [await userIdOf('bob'), await userIdOf('nina'), await userIdOf('ned')];
    assert.ok(found.includes(`${bob} ReadOnlyAccess`), `bob's on the pair is seen: ${JSON.stringify(found)}`);
    assert.ok(!found.includes(`${nina} ReadOnlyAccess`) && !found.includes(`${ned} ReadOnlyAccess`), 'not the ones the grants hold');
    assert.deepEqual(report.removed.filter((r) => r.accountId === NEIGHBOUR_ACCOUNT), []);
    assert.deepEqual(report.restored.filter((r) => r.accountId === NEIGHBOUR_ACCOUNT), []);
    assert.equal(await assignmentsOf('bob', NEIGHBOUR_ACCOUNT, 'ReadOnlyAccess', NEIGHBOUR_TENANT.id), 1, 'still there');

    await unassignDirectly('bob', NEIGHBOUR_ACCOUNT, 'ReadOnlyAccess', NEIGHBOUR_TENANT.id);
    for (const { user, grant } of grants) {
      const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { as: user, body: {} });
      assert.equal(revoked.body.status, 'revoked', JSON.stringify(revoked.body));
    }
  });

  it('looks only at its own tenant', async () => {
    const account = freshAccount();
    await activeGrant(account);
    await assignDirectly('bob', account, 'ReadOnlyAccess');
    await assignDirectly('alice', account, 'PowerUserAccess');
    const other = await reconcile(OTHER_TENANT.id);
    assert.equal(other.tenantId, OTHER_TENANT.id);
    assert.equal(other.foreign.find((a) => a.accountId === account), undefined, 'not an account of the other tenant');
    assert.equal(other.restored.find((r) => r.accountId === account), undefined);
    const own = await reconcile();
    assert.ok(own.foreign.some((a) => a.accountId === account), `its own round (by ${own.listing}) sees a hand-made one there`);
    await unassignDirectly('alice', account, 'PowerUserAccess');
  });
});

describe('reconciliation after a run terminated mid-provisioning', function () {
  this.timeout(180_000);
  const proxy = () => current().faults;
  beforeEach(() => proxy().reset());
  afterEach(() => proxy().reset());
  const ROLE = 'ReadOnlyAccess';

  async function activateAsFay(account: string) {
    const reply = await ensure([{ target: target(account), role: ROLE, duration_seconds: 600 }], { as: 'fay' });
    assert.equal(reply.body.grants?.[0]?.change, 'activated', JSON.stringify(reply.body));
    return reply.body.grants[0];
  }

  it('removes the assignment its creation left (the look is in the activity’s last heartbeat)', async () => {
    const account = freshAccount();
    // moto creates the assignment at once; the proxy answers IN_PROGRESS to every status poll.
    await proxy().on('CreateAccountAssignment', { inProgressPolls: 1000 });
    const grant = await activateAsFay(account);
    await eventually('a status poll', async () => ((await proxy().count('DescribeAccountAssignmentCreationStatus')) >= 1 ? true : undefined));
    assert.equal(await assignmentsOf('fay', account, ROLE), 1);
    await terminateGrant(FAULTS_TENANT.id, 'fay', account, ROLE);
    await proxy().reset();

    const report = await reconcile(FAULTS_TENANT.id);
    const entry = report.removed.find((r) => r.grantId === grant.id);
    assert.equal(entry?.removed, true, JSON.stringify(report));
    assert.equal(await assignmentsOf('fay', account, ROLE), 0);
  });

  it('leaves an assignment that was there before a run terminated during its look', async () => {
    const account = freshAccount();
    await assignDirectly('fay', account, ROLE);
    await proxy().on('ListAccountAssignments', { delayMs: 20_000, times: 1 });
    await activateAsFay(account);
    await eventually('the look to start', async () => ((await proxy().count('ListAccountAssignments')) >= 1 ? true : undefined));
    await terminateGrant(FAULTS_TENANT.id, 'fay', account, ROLE);

    const report = await reconcile(FAULTS_TENANT.id);
    assert.equal(report.removed.find((r) => r.accountId === account), undefined, JSON.stringify(report.removed));
    assert.ok(report.foreign.some((a) => a.accountId === account), 'reported as not ours');
    assert.equal(await assignmentsOf('fay', account, ROLE), 1);
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
