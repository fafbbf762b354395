// POST /v1/access/ensure through HTTP, checked against what exists in (emulated) AWS.
import assert from 'node:assert/strict';
import { WorkflowNotFoundError } from '@temporalio/common';
import { grantWorkflowId } from '../src/domain/grant';
import {
  afterExpiryTimer,
  assignDirectly,
  assignmentsOf,
  current,
  ensure,
  freshAccount,
  grantReaching,
  PRODUCTION_ACCOUNT,
  recordHistory,
  target,
  TENANT,
} from './support/world';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('POST /v1/access/ensure', function () {
  this.timeout(120_000);

  it('activates a role the policy auto-approves, and says none once it is active', async () => {
    const account = freshAccount();
    const first = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const [grant] = first.body.grants;
    assert.equal(grant.change, 'activated');
    assert.equal(grant.status, 'provisioning');
    assert.equal(grant.provisioning_status, 'pending');
    assert.equal(grant.approved, true);
    assert.match(grant.id, UUID);
    assert.equal(grant.access_request_id, null);
    assert.deepEqual(grant.validation, { has_reason: true, has_ticket_attachment: false });

    const active = await grantReaching(grant.id, 'active');
    assert.equal(active.provisioning_status, 'successful');
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 600_000);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);

    const again = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    assert.equal(again.status, 200);
    assert.equal(again.body.grants[0].change, 'none');
    assert.equal(again.body.grants[0].status, 'active');
    assert.equal(again.body.grants[0].id, grant.id);
    assert.equal(again.body.grants[0].expires_at, active.expires_at);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
  });

  it('requests review for a role that needs it, and says none while it is pending', async () => {
    const account = freshAccount();
    const first = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 1800 }], { reason: 'incident OPS-1' });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const [grant] = first.body.grants;
    assert.equal(grant.change, 'requested');
    assert.equal(grant.status, 'pending');
    assert.equal(grant.approved, false);
    assert.match(grant.access_request_id!, UUID);
    const review = grant.diagnostics.find((d) => d.code === 'review_required');
    assert.ok(review, 'a diagnostic says why review is needed');
    assert.match(JSON.stringify(review), /platform-admins/);

    const again = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 1800 }], { reason: 'incident OPS-1' });
    assert.equal(again.body.grants[0].change, 'none');
    assert.equal(again.body.grants[0].status, 'pending');
    assert.equal(again.body.grants[0].id, grant.id);
    assert.equal(again.body.grants[0].access_request_id, grant.access_request_id);
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
  });

  it('extends an active grant that would end too early, on the same grant', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    const active = await grantReaching(body.grants[0].id, 'active');

    const extended = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 7200 }]);
    const [grant] = extended.body.grants;
    assert.equal(grant.change, 'extended');
    assert.equal(grant.status, 'active');
    assert.equal(grant.id, active.id);
    assert.ok(Date.parse(grant.expires_at!) > Date.parse(active.expires_at!) + 6000_000, 'expires_at moved to now + 2h');
    assert.equal(grant.activated_at, active.activated_at);

    const shorter = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 60 }]);
    assert.equal(shorter.body.grants[0].change, 'none');
    assert.equal(shorter.body.grants[0].expires_at, grant.expires_at);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
  });

  it('uses the default duration when none is given', async () => {
    const { body } = await ensure([{ target: target(freshAccount()), role: 'ReadOnlyAccess' }]);
    const active = await grantReaching(body.grants[0].id, 'active');
    assert.equal(active.duration_seconds, 3600);
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 3600_000);
  });

  it('dry_run answers with the would-be change and starts and provisions nothing', async () => {
    const account = freshAccount();
    const dry = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }], { dryRun: true });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.equal(dry.body.grants[0].change, 'activated');
    const requested = await ensure([{ target: target(account), role: 'AdministratorAccess' }], { dryRun: true });
    assert.equal(requested.body.grants[0].change, 'requested');
    assert.equal(requested.body.grants[0].status, 'pending');

    for (const role of ['ReadOnlyAccess', 'AdministratorAccess']) {
      const id = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role });
      await assert.rejects(current().temporal.workflow.getHandle(id).describe(), WorkflowNotFoundError);
    }
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);

    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    const active = await grantReaching(body.grants[0].id, 'active');
    const wouldExtend = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 7200 }], { dryRun: true });
    assert.equal(wouldExtend.body.grants[0].change, 'extended');
    const after = await grantReaching(active.id, 'active');
    assert.equal(after.expires_at, active.expires_at, 'a dry run does not extend');
  });

  it('is all-or-nothing: one denied entitlement among three changes nothing', async () => {
    const [a, b] = [freshAccount(), freshAccount()];
    const reply = await ensure([
      { target: target(a), role: 'ReadOnlyAccess', duration_seconds: 600 },
      { target: target(b), role: 'ReadOnlyAccess', duration_seconds: 600 },
      { target: target(PRODUCTION_ACCOUNT), role: 'AdministratorAccess', duration_seconds: 7200 },
    ]);
    assert.equal(reply.status, 403);
    assert.equal(reply.body.code, 'forbidden');
    assert.ok(reply.body.notices!.some((n: string) => /at most 1 hour/.test(n)), JSON.stringify(reply.body));
    // The entitlement refused, and the rule that refused it.
    assert.deepEqual(reply.body.details.denied, [{ target: target(PRODUCTION_ACCOUNT), role: 'AdministratorAccess', policies: ['production-max-1h'] }]);
    for (const account of [a, b]) {
      const id = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'ReadOnlyAccess' });
      await assert.rejects(current().temporal.workflow.getHandle(id).describe(), WorkflowNotFoundError);
      assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    }
  });

  it('refuses a duration above the maximum with a notice that says the maximum', async () => {
    const reply = await ensure([{ target: target(freshAccount()), role: 'ReadOnlyAccess', duration_seconds: 13 * 3600 }]);
    assert.equal(reply.status, 403);
    assert.ok(reply.body.notices!.some((n: string) => n.includes('43200')), JSON.stringify(reply.body));
  });

  it('refuses what no policy allows, with the policy advice as notices', async () => {
    const noReason = await ensure([{ target: target(freshAccount()), role: 'AdministratorAccess' }], { reason: '   ' });
    assert.equal(noReason.status, 403);
    assert.ok(noReason.body.notices!.some((n: string) => /reason/.test(n)), JSON.stringify(noReason.body));
    const outsider = await ensure([{ target: target(freshAccount()), role: 'AdministratorAccess' }], { as: 'mallory' });
    assert.equal(outsider.status, 403);
    assert.equal(outsider.body.code, 'forbidden');
  });

  it('activates a role that needs a ticket only with a ticket attachment', async () => {
    const account = freshAccount();
    const entitlement = { target: target(account), role: 'PowerUserAccess', duration_seconds: 600 };
    const without = await ensure([entitlement], { attachments: ['see the chat'] });
    assert.equal(without.status, 403);
    assert.ok(without.body.notices!.some((n) => /ticket/.test(n)), JSON.stringify(without.body));
    const withTicket = await ensure([entitlement], { attachments: ['https://jira.example.com/browse/OPS-42'] });
    assert.equal(withTicket.status, 200, JSON.stringify(withTicket.body));
    assert.equal(withTicket.body.grants[0].change, 'activated');
    assert.deepEqual(withTicket.body.grants[0].validation, { has_reason: true, has_ticket_attachment: true });
    const active = await grantReaching(withTicket.body.grants[0].id, 'active');
    const expires = active.diagnostics.find((d) => d.code === 'expires');
    assert.ok(expires && expires.message.includes(active.expires_at!), 'a diagnostic says when access ends');
  });

  it("answers each call's own validation: a second ensure that adds a ticket shows it, whatever the first had", async () => {
    const account = freshAccount();
    const entitlement = { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 };
    const first = await ensure([entitlement], { reason: 'read logs' });
    assert.deepEqual(first.body.grants[0].validation, { has_reason: true, has_ticket_attachment: false });
    await grantReaching(first.body.grants[0].id, 'active');
    const again = await ensure([entitlement], { reason: 'read logs', attachments: ['OPS-123'] });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.grants[0].change, 'none');
    assert.deepEqual(again.body.grants[0].validation, { has_reason: true, has_ticket_attachment: true }, 'this call has a ticket');
    const extended = await ensure([{ ...entitlement, duration_seconds: 1200 }], { reason: '' });
    assert.equal(extended.body.grants[0].change, 'extended');
    assert.deepEqual(extended.body.grants[0].validation, { has_reason: false, has_ticket_attachment: false }, 'this call has neither');
  });

  it('makes one grant and one assignment from 20 identical calls at once', async () => {
    const account = freshAccount();
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }])),
    );
    assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
    const grants = replies.map((r) => r.body.grants[0]);
    assert.equal(new Set(grants.map((g) => g.id)).size, 1);
    assert.equal(grants.filter((g) => g.change === 'activated').length, 1);
    assert.equal(grants.filter((g) => g.change === 'none').length, 19);
    await grantReaching(grants[0].id, 'active');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
  });

  it('expires a short grant on time and removes its assignment', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 5 }]);
    const active = await grantReaching(body.grants[0].id, 'active');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);
    const expired = await grantReaching(active.id, 'expired');
    assert.equal(expired.expires_at, active.expires_at);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    // Ended by one activity (the deletion, then the audit events); the timer's task records the 1.4 patch (its marker and Temporal's version search attribute) and schedules it, showing nothing until access has ended (no memo); the run completed in the task that saw it done.
    assert.deepEqual(await afterExpiryTimer(active.id), { workflowTasks: 2, timerTask: ['EVENT_TYPE_MARKER_RECORDED', 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES', 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'], activities: ['endAccess'], completed: true });
    await recordHistory('activate-then-expire', active.id);

    const next = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    assert.equal(next.body.grants[0].change, 'activated', 'a closed grant is followed by a new one');
    assert.notEqual(next.body.grants[0].id, active.id);
  });

  it('extends by update on the running workflow, and records the history', async () => {
    const account = freshAccount();
    // The extension must arrive before the first 10 seconds are up: seeing the grant active and
    // sending one ensure takes well under a second, even on two busy cores.
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 10 }]);
    await grantReaching(body.grants[0].id, 'active');
    const extended = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 12 }]);
    assert.equal(extended.body.grants[0].change, 'extended');
    await grantReaching(body.grants[0].id, 'expired');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    await recordHistory('activate-extend-expire', body.grants[0].id);
  });

  it('leaves an assignment that existed before the grant in place', async () => {
    const account = freshAccount();
    await assignDirectly('alice', account, 'ReadOnlyAccess');
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 3 }]);
    const active = await grantReaching(body.grants[0].id, 'active');
    assert.ok(active.diagnostics.some((d) => d.code === 'assignment_preexisted'));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1, 'no second assignment');
    await grantReaching(active.id, 'expired');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1, 'the pre-existing assignment is still there');
    // Nothing to delete: the one activity writes the events only.
    assert.deepEqual(await afterExpiryTimer(active.id), { workflowTasks: 2, timerTask: ['EVENT_TYPE_MARKER_RECORDED', 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES', 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'], activities: ['endAccess'], completed: true });
    await recordHistory('preexisting-assignment', active.id);
  });
});
