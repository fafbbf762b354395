// The grant workflow itself, on the real server: what only many messages can show.
import assert from 'node:assert/strict';
import { grantWorkflowId, type GrantState, type GrantView } from '../src/domain/grant';
import { ensureUpdate, GRANT_MEMO } from '../src/workflows/messages';
import { storedEvents } from './support/audit';
import { assignmentsOf, call, current, ensure, eventually, freshAccount, grantReaching, recordHistory, target, TENANT, workflowEnsure } from './support/world';

describe('grant workflow', function () {
  this.timeout(300_000);

  it('continues as new under many extensions, keeping its id, expiry and state', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    const active = await grantReaching(body.grants[0].id, 'active');
    const handle = current().temporal.workflow.getHandle(
      grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'ReadOnlyAccess' }),
    );
    const firstRun = (await handle.describe()).runId;
    const request = workflowEnsure(0, 'load');
    let expiresAt = '';
    // Each extension adds about five events; 600 of them pass the workflow's 2000-event bound.
    for (let i = 1; i <= 600; i++) {
      const outcome = await handle.executeUpdate(ensureUpdate, { args: [{ ...request, durationSeconds: 3600 + 400 * i }] });
      assert.equal(outcome.change, 'extended');
      assert.equal(outcome.state.id, active.id);
      expiresAt = outcome.state.expiresAt!;
    }
    const latest = await handle.describe();
    assert.notEqual(latest.runId, firstRun, 'the workflow continued as new');
    assert.ok(latest.historyLength < 2100, `history stays bounded (${latest.historyLength} events)`);
    assert.equal((latest.memo?.[GRANT_MEMO] as GrantState).expiresAt, expiresAt, 'the new run holds the last expiry');
    // Sent straight to the workflow, not through the API: the API's read shows them once visibility has the last.
    const after = await eventually('the API to read the last expiry', async () => {
      const g = (await call<GrantView>('GET', `/v1/access/grants/${active.id}`)).body;
      return g.expires_at === expiresAt ? g : undefined;
    });
    assert.equal(after.status, 'active');
    assert.equal(after.activated_at, active.activated_at);

    const revoked = await call('POST', `/v1/access/grants/${active.id}/revoke`, { body: {} });
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);

    // Every extension on record, once, across the runs (the last run closes only once all are written).
    await eventually('the last run to close', async () => ((await handle.describe()).status.name === 'COMPLETED' ? true : undefined), 120_000);
    const events = (await storedEvents()).filter((e) => e.event.grant_id === active.id);
    const counts: Record<string, number> = {};
    for (const e of events) counts[e.event.event] = (counts[e.event.event] ?? 0) + 1;
    assert.deepEqual(counts, { requested: 1, activated: 1, extended: 600, revoked: 1, deprovisioned: 1 });
    await recordHistory('extensions-continue-as-new', active.id, 'continued');
  });

  it('a pending request continues as new under many messages, keeping its id and request, and notifies reviewers once', async () => {
    const account = freshAccount();
    const reply = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'deploy fix' });
    const pending = reply.body.grants[0];
    assert.equal(pending.change, 'requested', JSON.stringify(reply.body));
    const handle = current().temporal.workflow.getHandle(
      grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'AdministratorAccess' }),
    );
    const firstRun = (await handle.describe()).runId;
    const request = workflowEnsure(600, 'deploy fix', { autoApprove: false, pendingTtlSeconds: 3600 });
    // What the API sends when a busy grant has no room for its query: ensures that change nothing
    // but are recorded (about five events each). 500 of them pass the workflow's 2000-event bound.
    for (let i = 1; i <= 500; i++) {
      const outcome = await handle.executeUpdate(ensureUpdate, { args: [request] });
      assert.equal(outcome.change, 'none');
      assert.equal(outcome.state.id, pending.id);
    }
    const latest = await handle.describe();
    assert.notEqual(latest.runId, firstRun, 'the workflow continued as new');
    assert.ok(latest.historyLength < 2100, `history stays bounded (${latest.historyLength} events)`);
    const still = await grantReaching(pending.id, 'pending');
    assert.equal(still.access_request_id, pending.access_request_id);
    // Told once: one notification in all the runs' histories, and so one message.
    assert.equal(await notificationsScheduled(handle.workflowId, 'review_requested'), 1, 'reviewers are told once');
    await eventually('the reviewers’ message', async () => {
      const toReviewers = current().webhooks.received.filter((r) => r.path === '/reviewers' && r.body.text.includes(target(account)));
      return toReviewers.length === 1 ? true : undefined;
    });

    const approved = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'approve' } });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    await grantReaching(pending.id, 'active');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 1);
    await call('POST', `/v1/access/grants/${pending.id}/revoke`, { body: {} });
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
  });
});

/** How many `notify` activities of `event` the runs of a workflow scheduled, read from their histories. */
async function notificationsScheduled(workflowId: string, event: string): Promise<number> {
  const { temporal } = current();
  let count = 0;
  for await (const run of temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    const { events } = await temporal.workflow.getHandle(workflowId, run.runId).fetchHistory();
    for (const e of events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name !== 'notify') continue;
      const [notification] = (scheduled.input?.payloads ?? []).map((p) => JSON.parse(Buffer.from(p.data!).toString('utf8')) as { event: string });
      if (notification?.event === event) count += 1;
    }
  }
  return count;
}
