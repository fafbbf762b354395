// Messages that race with each other or with the grant's timers, each decided one way.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowUpdateStage } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { workerActivities } from '../src/worker';
import { loadConfig } from '../src/config';
import { grantWorkflowId, type GrantKey } from '../src/domain/grant';
import type { grantWorkflow } from '../src/workflows/grant';
import { ensureUpdate, grantStateQuery, reconcileUpdate, revokeSignal } from '../src/workflows/messages';
import { assignmentsOf, call, current, ensure, eventually, FAULTS_TENANT, freshAccount, grantReaching, target, TENANT, unassignDirectly, USERS, workflowEnsure } from './support/world';

const ROLE = 'ReadOnlyAccess';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('races', function () {
  this.timeout(180_000);
  const faults = () => current().faults;
  afterEach(() => faults().reset());

  it('a revoke whose removal is still under way answers the status the grant has, with a diagnostic saying so', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: ROLE, duration_seconds: 600 }], { as: 'fay' });
    await grantReaching(body.grants[0].id, 'active', 'fay');
    // AWS takes the deletion but never reports it done (until reset).
    await faults().on('DeleteAccountAssignment', { inProgressPolls: 100_000 });

    const reply = await call('POST', `/v1/access/grants/${body.grants[0].id}/revoke`, { as: 'fay', body: { reason: 'done' } });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'active', 'the assignment is not gone yet');
    const inProgress = reply.body.diagnostics.find((d: { code: string }) => d.code === 'revocation_in_progress');
    assert.ok(inProgress, `a revoke that has not finished says so: ${JSON.stringify(reply.body.diagnostics)}`);
    assert.match(inProgress.message, /still under way/);

    await faults().reset(); // AWS finishes the deletion
    await grantReaching(body.grants[0].id, 'revoked', 'fay', 60_000);
    assert.equal(await assignmentsOf('fay', account, ROLE), 0);
  });

  it('an ensure after the revocation is recorded, before the run closes, is not told `extended`: it gets a new grant', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: ROLE, duration_seconds: 600 }], { as: 'fay' });
    const first = await grantReaching(body.grants[0].id, 'active', 'fay');
    const handle = current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: FAULTS_TENANT.id, principalId: 'fay', target: target(account), role: ROLE }));
    const firstRunId = (await handle.describe()).runId;
    // Keep the grant's main sequence busy: the assignment went missing, and re-creating it hangs at AWS.
    await unassignDirectly('fay', account, ROLE);
    await faults().on('CreateAccountAssignment', { inProgressPolls: 100_000 });
    await handle.startUpdate(reconcileUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED });
    await eventually('the re-creation in flight', async () => ((await faults().count('DescribeAccountAssignmentCreationStatus')) >= 1 ? true : undefined));

    const revoking = call('POST', `/v1/access/grants/${first.id}/revoke`, { as: 'fay', body: { reason: 'leaving' } });
    await eventually('the revocation recorded', async () => ((await handle.query(grantStateQuery)).revocation ? true : undefined));
    const sentAt = Date.now();
    const extending = ensure([{ target: target(account), role: ROLE, duration_seconds: 3600 }], { as: 'fay' });
    await delay(2000); // the ensure reaches the grant while it is still open
    await faults().reset(); // AWS finishes: the grant's sequence goes on to the revocation

    const [revoked, extended] = await Promise.all([revoking, extending]);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(extended.status, 200, JSON.stringify(extended.body));
    const grant = extended.body.grants[0];
    assert.notEqual(grant.change, 'extended', 'a grant being revoked is never extended');
    assert.notEqual(grant.id, first.id, 'the ensure is answered with a new grant');
    assert.equal(grant.change, 'activated');
    await grantReaching(first.id, 'revoked', 'fay');
    // The race really happened: the first run closed well after the ensure was sent (an ensure
    // reaches a grant in milliseconds), so the ensure met the grant open while it was revoked.
    const firstRun = await current().temporal.workflow.getHandle(handle.workflowId, firstRunId).describe();
    assert.ok(firstRun.closeTime && firstRun.closeTime.getTime() - sentAt >= 1000, `first run closed at ${firstRun.closeTime?.toISOString()}, the ensure sent at ${new Date(sentAt).toISOString()}`);
    await grantReaching(grant.id, 'active', 'fay');
    assert.equal(await assignmentsOf('fay', account, ROLE), 1, 'the new grant holds the assignment');
  });

  describe('an extension and the expiry timer in the same workflow task', () => {
    const taskQueue = `races-${process.pid}`;
    let bundle: WorkflowBundleWithSourceMap;
    let connection: NativeConnection;

    before(async function () {
      this.timeout(120_000);
      bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows') });
      connection = await NativeConnection.connect({ address: current().stack.temporalAddress });
    });
    after(() => connection?.close());

    /** A worker of this test's own, on its own task queue, so the test can stop and start it. */
    const runWorkerUntil = async <T>(until: Promise<T>): Promise<T> => {
      const worker = await Worker.create({
        connection,
        taskQueue,
        workflowBundle: bundle,
        activities: workerActivities(loadConfig(current().stack.configPath), { client: current().temporal }),
      });
      return worker.runUntil(until);
    };

    it('a client told `extended` keeps its access past the old expiry', async () => {
      const account = freshAccount();
      const key: GrantKey = { tenantId: TENANT.id, principalId: 'alice', target: target(account), role: ROLE };
      const workflowId = grantWorkflowId(key);
      const client = current().temporal;
      const request = workflowEnsure(5, 'race');
      const handle = client.workflow.getHandle<typeof grantWorkflow>(workflowId);
      const active = await runWorkerUntil(
        (async () => {
          await client.workflow.executeUpdateWithStart(ensureUpdate, {
            args: [request],
            startWorkflowOperation: new WithStartWorkflowOperation<typeof grantWorkflow>('grantWorkflow', {
              workflowId,
              taskQueue,
              args: [{ key, principal: { id: 'alice', email: USERS.alice.email, groups: USERS.alice.groups }, grantId: randomUUID() }],
              workflowIdConflictPolicy: 'USE_EXISTING',
            }),
          });
          return eventually('the grant active', async () => {
            const state = await handle.query(grantStateQuery);
            return state.status === 'active' ? state : undefined;
          });
        })(),
      );
      assert.equal(await assignmentsOf('alice', account, ROLE), 1);

      // No worker: the expiry timer fires at the server, and its workflow task waits.
      const oldExpiry = Date.parse(active.expiresAt!);
      await delay(Math.max(0, oldExpiry - Date.now()) + 2000);
      // The extension reaches the server before a worker takes that task: both land in one activation.
      const extension = handle.executeUpdate(ensureUpdate, { args: [{ ...request, durationSeconds: 600 }] });
      await delay(2000);
      const outcome = await runWorkerUntil(extension);
      assert.equal(outcome.change, 'extended', JSON.stringify(outcome));
      // The race really happened: the timer fired and the update was taken in one workflow task.
      const events = (await handle.fetchHistory()).events ?? [];
      const lastIndex = (upTo: number, is: (e: (typeof events)[number]) => unknown) => {
        for (let i = upTo - 1; i >= 0; i--) if (is(events[i])) return i;
        return -1;
      };
      const accepted = lastIndex(events.length, (e) => e.workflowExecutionUpdateAcceptedEventAttributes);
      const fired = lastIndex(accepted, (e) => e.timerFiredEventAttributes);
      assert.ok(fired >= 0, 'the expiry timer fired before the extension was accepted');
      assert.equal(events.slice(fired, accepted).filter((e) => e.workflowTaskCompletedEventAttributes).length, 1, 'in the same workflow task');

      await runWorkerUntil(
        (async () => {
          await delay(3000); // time for the workflow to act on the old expiry, were it to
          const after = await handle.query(grantStateQuery);
          assert.equal(after.status, 'active', JSON.stringify(after));
          assert.equal(after.closing, false);
          assert.equal(after.expiresAt, outcome.state.expiresAt);
          assert.ok(Date.parse(after.expiresAt!) > oldExpiry + 500_000);
          assert.equal(await assignmentsOf('alice', account, ROLE), 1, 'the client told `extended` still has access');
          // Clean up: revoke it.
          await handle.signal(revokeSignal, { revokedBy: 'alice', reason: 'test over' });
          await eventually('the grant revoked', async () => ((await handle.query(grantStateQuery)).status === 'revoked' ? true : undefined));
        })(),
      );
      assert.equal(await assignmentsOf('alice', account, ROLE), 0);
    });
  });
});
