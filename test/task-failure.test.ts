// An update whose workflow task fails (issue 24: under load the SDK's core failed a task that
// carried an ensure's acceptance, and the API answered 500). The failure is injected with a
// workflow interceptor on a worker of this test's own; the grant is the real workflow.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { workerActivities } from '../src/worker';
import { loadConfig } from '../src/config';
import { grantWorkflowId, type GrantKey } from '../src/domain/grant';
import type { grantWorkflow } from '../src/workflows/grant';
import { ensureUpdate, grantStateQuery } from '../src/workflows/messages';
import { FAIL_TASK_MARK } from './fixtures/failing-ensure-interceptor';
import { grantEvents } from './support/audit';
import { assertErrorShape, assignmentsOf, call, current, ensure, eventually, freshAccount, grantReaching, target, TENANT, USERS, workflowEnsure } from './support/world';

const ROLE = 'ReadOnlyAccess';

describe('an update whose workflow task fails', function () {
  this.timeout(180_000);
  const taskQueue = `task-failure-${process.pid}`;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let failedTasks: string[] = [];

  before(async function () {
    this.timeout(120_000);
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../src/workflows'),
      workflowInterceptorModules: [require.resolve('./fixtures/failing-ensure-interceptor')],
    });
    connection = await NativeConnection.connect({ address: current().stack.temporalAddress });
    worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle,
      activities: workerActivities(loadConfig(current().stack.configPath), { client: current().temporal }),
      sinks: { faults: { taskFailed: { fn: (_info, updateId: string) => void failedTasks.push(updateId), callDuringReplay: false } } },
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
  });

  /** A grant of alice's for 600 s, started here so that it runs on this test's worker. */
  const activeGrantHere = async (account: string) => {
    const key: GrantKey = { tenantId: TENANT.id, principalId: 'alice', target: target(account), role: ROLE };
    const request = workflowEnsure(600, 'before the fault');
    const client = current().temporal;
    const handle = client.workflow.getHandle<typeof grantWorkflow>(grantWorkflowId(key));
    await client.workflow.executeUpdateWithStart(ensureUpdate, {
      args: [request],
      startWorkflowOperation: new WithStartWorkflowOperation<typeof grantWorkflow>('grantWorkflow', {
        workflowId: handle.workflowId,
        taskQueue,
        args: [{ key, principal: { id: 'alice', email: USERS.alice.email, groups: USERS.alice.groups }, grantId: randomUUID() }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
    const active = await eventually('the grant active', async () => {
      const state = await handle.query(grantStateQuery);
      return state.status === 'active' ? state : undefined;
    });
    return { handle, active };
  };

  it('an ensure is tried once more, then answered 503 with Retry-After; the grant and its audit trail are as before', async () => {
    const account = freshAccount();
    const { handle, active } = await activeGrantHere(account);
    await grantEvents(active.id, ['requested', 'activated']);
    const completedUpdates = async () => ((await handle.fetchHistory()).events ?? []).filter((e) => e.workflowExecutionUpdateCompletedEventAttributes).length;
    assert.equal(await completedUpdates(), 1, 'the first ensure');

    failedTasks = [];
    const failed = await ensure([{ target: target(account), role: ROLE, duration_seconds: 3600 }], { reason: `extend ${FAIL_TASK_MARK}` });
    assert.equal(failed.status, 503, JSON.stringify(failed.body));
    assertErrorShape(failed, 'unavailable');
    assert.match(failed.body.message!, /nothing was changed/);
    assert.equal(failed.headers?.get('retry-after'), '1');
    // Temporal itself delivers an update again with the task's retries; the API sends it once more.
    assert.equal(new Set(failedTasks).size, 2, `the API sent the ensure twice (updates ${[...new Set(failedTasks)].join(', ')})`);

    // Temporal retries the failed task until the updates it carried are given up. Meanwhile the
    // grant cannot answer a query; reads do not ask it (issue 20): they answer from visibility and
    // the run's memo, with the grant as it was.
    const during = await call('GET', `/v1/access/grants/${active.id}`);
    const queried = await current().temporal.withDeadline(Date.now() + 3000, () => handle.query(grantStateQuery)).then(() => 'answered', () => 'failed');
    assert.equal(queried, 'failed', 'the read came while the task was failing (a query then still failed)');
    assert.equal(during.status, 200, JSON.stringify(during.body));
    assert.equal(during.body.expires_at, active.expiresAt, 'the grant as it was before the failed call');
    await eventually('the grant to answer a query again', () => handle.query(grantStateQuery).then(() => true, () => undefined), 120_000);
    const after = await handle.query(grantStateQuery);
    assert.equal(after.expiresAt, active.expiresAt, 'the expiry is as before');
    assert.equal(after.durationSeconds, 600);
    assert.equal(after.status, 'active');
    assert.equal(await completedUpdates(), 1, 'no update of the failed call is in the history');
    assert.equal(await assignmentsOf('alice', account, ROLE), 1);

    // Sent again without the fault, the same call extends the grant, and the trail has one extension.
    const extended = await ensure([{ target: target(account), role: ROLE, duration_seconds: 3600 }], { reason: 'extend' });
    assert.equal(extended.status, 200, JSON.stringify(extended.body));
    assert.equal(extended.body.grants[0].change, 'extended');
    assert.equal(extended.body.grants[0].id, active.id);
    const events = await grantEvents(active.id, ['requested', 'activated', 'extended']);
    assert.deepEqual(events.map((e) => e.event.event), ['requested', 'activated', 'extended'], 'no event of the failed call');
    assert.equal(events[2].event.details.reason, 'extend');
  });

  it('a call of several entitlements that fails after some took effect names them in details.changed', async () => {
    const [failing, fresh] = [freshAccount(), freshAccount()];
    const { handle, active } = await activeGrantHere(failing);
    const reply = await ensure(
      [
        { target: target(fresh), role: ROLE, duration_seconds: 600 },
        { target: target(failing), role: ROLE, duration_seconds: 3600 },
      ],
      { reason: `both ${FAIL_TASK_MARK}` },
    );
    assert.equal(reply.status, 503, JSON.stringify(reply.body));
    assertErrorShape(reply, 'unavailable');
    assert.deepEqual(
      reply.body.details.changed.map((g: { target: string; change: string }) => [g.target, g.change]),
      [[target(fresh), 'activated']],
      'the grant the call started is named; the one that failed is not',
    );
    assert.match(reply.body.message!, new RegExp(`${ROLE} on ${target(fresh)}`));
    await grantReaching(reply.body.details.changed[0].id, 'active');
    const after = await eventually('the failing grant to answer again', () => handle.query(grantStateQuery).catch(() => undefined), 120_000);
    assert.equal(after.expiresAt, active.expiresAt, 'the failed entitlement changed nothing');
  });
});
