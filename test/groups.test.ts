// Group grants (issue 39 §3): membership of an Identity Store group the tenant lists as grantable,
// for the grant's duration, on moto's identity store. The groups and the tenant's policies are
// test/support/groups.ts's; the tenant's AWS calls pass a proxy that describes one group as synced
// by SCIM (moto never sets ExternalIds).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CreateGroupMembershipCommand, DeleteGroupMembershipCommand, ListGroupMembershipsForMemberCommand, paginateListGroupMemberships } from '@aws-sdk/client-identitystore';
import { parseTarget } from '../src/cli/main';
import { CreateAccountAssignmentCommand, DeleteAccountAssignmentCommand } from '@aws-sdk/client-sso-admin';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../src/activities';
import { env, loadConfig } from '../src/config';
import { grantWorkflowId, type GrantView } from '../src/domain/grant';
import type { reconcileWorkflow } from '../src/workflows/reconcile';
import { groups } from './support/groups';
import { assertErrorShape, call, current, type EnsureReply, eventually, GROUPS_TENANT, permissionSetArnOf, recordHistory, recordRun, tokenFor, userIdOf, USERS } from './support/world';

type User = keyof typeof USERS;

const group = (nameOrId: string) => `AWS::IdentityStore::Group::${nameOrId}`;

async function as<T = any>(user: User, method: string, urlPath: string, body?: unknown) {
  return call<T>(method, urlPath, { token: await tokenFor(user, GROUPS_TENANT.id), tenant: GROUPS_TENANT.id, body });
}

async function ensureGroup(user: User, target: string, opts: { role?: string; duration?: number; startsAt?: string } = {}) {
  return as<EnsureReply>(user, 'POST', '/v1/access/ensure', {
    entitlements: [{ target, role: opts.role ?? 'member', ...(opts.duration && { duration_seconds: opts.duration }) }],
    justification: { reason: 'group test' },
    ...(opts.startsAt && { starts_at: opts.startsAt }),
  });
}

async function reaching(user: User, id: string, status: string, timeoutMs = 30_000): Promise<GrantView> {
  return eventually(`grant ${id} to be ${status}`, async () => {
    const reply = await as<GrantView>(user, 'GET', `/v1/access/grants/${id}`);
    return reply.status === 200 && reply.body.status === status ? reply.body : undefined;
  }, timeoutMs);
}

/** The group's members (user ids), as moto holds them. */
async function membersOf(groupId: string): Promise<string[]> {
  const { identity } = current();
  const members: string[] = [];
  for await (const page of paginateListGroupMemberships({ client: identity }, { IdentityStoreId: groups().identityStoreId, GroupId: groupId })) {
    for (const m of page.GroupMemberships ?? []) members.push((m.MemberId as { UserId: string }).UserId);
  }
  return members;
}

async function isMember(user: User, groupId: string): Promise<boolean> {
  return (await membersOf(groupId)).includes(await userIdOf(user));
}

async function reconcile(workflowId = `reconcile-test/${randomUUID()}`): Promise<Awaited<ReturnType<typeof reconcileWorkflow>>> {
  return current().temporal.workflow.execute<typeof reconcileWorkflow>('reconcileWorkflow', {
    workflowId,
    taskQueue: env.taskQueue,
    args: [{ tenantId: GROUPS_TENANT.id }],
  });
}

describe('group grants', function () {
  this.timeout(120_000);

  it('makes the user a member at activation and removes the membership at expiry; the answer warns that sessions are not cut', async () => {
    const { ids } = groups();
    const reply = await ensureGroup('alice', group('data-admins'), { duration: 4 });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const [grant] = reply.body.grants;
    assert.equal(grant.change, 'activated');
    assert.equal(grant.target, group('data-admins'));
    const warning = grant.diagnostics.find((d) => d.code === 'session_may_outlive_grant');
    assert.equal(warning?.level, 'warning', JSON.stringify(grant.diagnostics));
    assert.match(warning!.message, /PowerUserAccess on 111111111111/, 'what the tenant says the group brings');
    const active = await reaching('alice', grant.id, 'active');
    assert.ok(await isMember('alice', ids.dataAdmins), 'a member while active');
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 4000);
    await reaching('alice', grant.id, 'expired');
    assert.equal(await isMember('alice', ids.dataAdmins), false, 'removed at expiry');
    await recordHistory('group-activate-expire', grant.id);
    // On the audit trail under the group's target, for an auditor who asks about the group.
    const trail = await eventually('the grant\'s events on the audit trail', async () => {
      const read = await as<{ events: { event: string; grant_id: string | null; details: Record<string, unknown> }[] }>('sam', 'GET', `/v1/access/audit?target=${encodeURIComponent(group('data-admins'))}&principal=alice`);
      assert.equal(read.status, 200, JSON.stringify(read.body));
      const mine = read.body.events.filter((e) => e.grant_id === grant.id);
      return mine.some((e) => e.event === 'deprovisioned') ? mine : undefined;
    });
    assert.deepEqual(trail.map((e) => e.event).sort(), ['activated', 'deprovisioned', 'expired', 'requested']);
    assert.deepEqual(trail.find((e) => e.event === 'activated')!.details.assignment_ids, { user_id: await userIdOf('alice'), group_id: ids.dataAdmins });
  });

  it('leaves a membership that existed before the grant in place when the grant ends', async () => {
    const { ids, identityStoreId } = groups();
    await current().identity.send(new CreateGroupMembershipCommand({ IdentityStoreId: identityStoreId, GroupId: ids.dataAdmins, MemberId: { UserId: await userIdOf('bob') } }));
    const reply = await ensureGroup('bob', group('data-admins'), { duration: 3 });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const active = await reaching('bob', reply.body.grants[0].id, 'active');
    assert.ok(active.diagnostics.some((d) => d.code === 'assignment_preexisted'), JSON.stringify(active.diagnostics));
    await reaching('bob', active.id, 'expired');
    assert.ok(await isMember('bob', ids.dataAdmins), 'still a member: not the grant\'s to remove');
  });

  it('waits for a reviewer where policy says so (a production group, named by its id); approved, the user becomes a member; revoked, not', async () => {
    const { ids } = groups();
    const reply = await ensureGroup('otto', group(ids.prodAdmins));
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const [pending] = reply.body.grants;
    assert.equal(pending.change, 'requested');
    assert.equal(pending.target, group('prod-admins'), 'the key keeps the name: one grant per group');
    assert.equal(await isMember('otto', ids.prodAdmins), false, 'nothing made before the review');
    const review = await as('carol', 'POST', `/v1/access/requests/${pending.access_request_id}/review`, { decision: 'approve', comment: 'ok' });
    assert.equal(review.status, 200, JSON.stringify(review.body));
    await reaching('otto', pending.id, 'active');
    assert.ok(await isMember('otto', ids.prodAdmins));
    const revoked = await as('otto', 'POST', `/v1/access/grants/${pending.id}/revoke`, { reason: 'done' });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await reaching('otto', pending.id, 'revoked');
    assert.equal(await isMember('otto', ids.prodAdmins), false);
    await recordHistory('group-request-approve-revoke', pending.id);
  });

  it('extends an active group grant by a longer ensure; the membership stays', async () => {
    const { ids } = groups();
    const first = await ensureGroup('erin', group('data-admins'), { duration: 60 });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const active = await reaching('erin', first.body.grants[0].id, 'active');
    const again = await ensureGroup('erin', group('data-admins'), { duration: 600 });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.grants[0].change, 'extended');
    assert.equal(again.body.grants[0].id, active.id);
    assert.ok(Date.parse(again.body.grants[0].expires_at!) > Date.parse(active.expires_at!));
    assert.ok(await isMember('erin', ids.dataAdmins));
    // Listed by its target, as any grant; a group name with a space is a target like another.
    const listed = await eventually('the grant listed by its group target', async () => {
      const reply = await as<{ grants: GrantView[] }>('erin', 'GET', `/v1/access/grants?target=${encodeURIComponent(group('data-admins'))}`);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      return reply.body.grants.some((g) => g.id === active.id) ? reply.body.grants : undefined;
    });
    assert.ok(listed.every((g) => g.target === group('data-admins')));
    const spaced = await as<{ grants: GrantView[] }>('erin', 'GET', `/v1/access/grants?target=${encodeURIComponent(group('Data Admins EU'))}`);
    assert.equal(spaced.status, 200, JSON.stringify(spaced.body));
    assert.deepEqual(spaced.body.grants, []);
    await as('erin', 'POST', `/v1/access/grants/${active.id}/revoke`, { reason: 'done' });
    await reaching('erin', active.id, 'revoked');
    assert.equal(await isMember('erin', ids.dataAdmins), false);
  });

  it('starts a scheduled group grant at its starts_at, decided again then, and not before', async () => {
    const { ids } = groups();
    const startsAt = new Date(Date.now() + 4000).toISOString();
    const reply = await ensureGroup('otto', group('data-admins'), { duration: 3, startsAt });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const [scheduled] = reply.body.grants;
    assert.equal(scheduled.status, 'pending');
    assert.equal(scheduled.starts_at, startsAt);
    assert.equal(await isMember('otto', ids.dataAdmins), false, 'nothing made before the start');
    const active = await reaching('otto', scheduled.id, 'active');
    assert.ok(Date.parse(active.activated_at!) >= Date.parse(startsAt));
    assert.ok(await isMember('otto', ids.dataAdmins));
    await reaching('otto', scheduled.id, 'expired');
    assert.equal(await isMember('otto', ids.dataAdmins), false);
  });

  it('the CLI takes a group target (--target AWS::IdentityStore::Group::{name or id}) and refuses a malformed one before sending', () => {
    assert.equal(parseTarget(group('data-admins')), group('data-admins'));
    assert.equal(parseTarget(group('Data Admins EU')), group('Data Admins EU'));
    assert.equal(parseTarget('123456789012'), 'AWS::Account::123456789012');
    for (const bad of [group(''), group('"quoted"'), group('trailing '), 'AWS::IdentityStore::Group']) {
      assert.throws(() => parseTarget(bad), /AWS::IdentityStore::Group::\{group name or id\}/, bad);
    }
  });

  it('refuses a group the tenant does not list, and another role than member, in the contract\'s shape; nothing is started or made', async () => {
    const { ids } = groups();
    for (const [target, role, notice] of [
      [group('payroll'), 'member', /is not a grantable group of this tenant/],
      [group(ids.payroll), 'member', /is not a grantable group of this tenant/],
      [group('no-such-group'), 'member', /is not a grantable group of this tenant/],
      [group('data-admins'), 'ReadOnlyAccess', /a group grant's role is "member"/],
    ] as const) {
      const reply = await ensureGroup('fred', target, { role });
      assert.equal(reply.status, 403, JSON.stringify(reply.body));
      assertErrorShape(reply, 'forbidden');
      assert.match(reply.body.notices!.join(' '), notice);
      await assert.rejects(
        current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: GROUPS_TENANT.id, principalId: USERS.fred.sub, target, role })).describe(),
        (err: Error) => err.name === 'WorkflowNotFoundError',
      );
    }
    assert.equal(await isMember('fred', ids.payroll), false);
    assert.equal(await isMember('fred', ids.dataAdmins), false);
    const twice = await as<EnsureReply>('fred', 'POST', '/v1/access/ensure', {
      entitlements: [{ target: group('prod-admins'), role: 'member' }, { target: group(ids.prodAdmins), role: 'member' }],
      justification: { reason: 'group test' },
    });
    assert.equal(twice.status, 400, JSON.stringify(twice.body));
    assertErrorShape(twice, 'invalid_request');
    assert.match(twice.body.message!, /asked for twice/);
    const badName = await ensureGroup('fred', group('"quoted"'));
    assert.equal(badName.status, 400, JSON.stringify(badName.body));
    assertErrorShape(badName);
  });

  it('decides by policy on the group entity: a forbid on one grantable group refuses it with its advice', async () => {
    const { ids } = groups();
    const reply = await ensureGroup('fred', group('restricted'));
    assert.equal(reply.status, 403, JSON.stringify(reply.body));
    assertErrorShape(reply, 'forbidden');
    assert.deepEqual(reply.body.notices, ['Nobody is granted the restricted group.']);
    assert.equal(await isMember('fred', ids.restricted), false);
  });

  it('an operator cancelling the workflow of an active group grant revokes it and removes the membership', async () => {
    const { ids } = groups();
    const reply = await ensureGroup('otto', group('data-admins'), { duration: 600 });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = await reaching('otto', reply.body.grants[0].id, 'active');
    assert.ok(await isMember('otto', ids.dataAdmins));
    await current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: GROUPS_TENANT.id, principalId: USERS.otto.sub, target: group('data-admins'), role: 'member' })).cancel();
    const revoked = await reaching('otto', grant.id, 'revoked');
    assert.ok(revoked.diagnostics.some((d) => d.code === 'revoked' && /an operator/.test(d.message)), JSON.stringify(revoked.diagnostics));
    assert.equal(await isMember('otto', ids.dataAdmins), false);
  });

  it('refuses a group synced from an external identity provider (SCIM) before making anything: the grant closes saying why', async () => {
    const { ids } = groups();
    const reply = await ensureGroup('fred', group('scim-synced'));
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const closed = await reaching('fred', reply.body.grants[0].id, 'revoked');
    const failed = closed.diagnostics.find((d) => d.code === 'provisioning_failed');
    assert.match(failed?.message ?? '', /provisioned by an external identity provider \(https:\/\/scim\.idp\.example\.com\).*next sync would undo or refuse/, JSON.stringify(closed.diagnostics));
    assert.equal(await isMember('fred', ids.scimSynced), false);
  });

  it('reconciliation has the grant re-create a membership removed behind its back; the grant stays active', async () => {
    const { ids, identityStoreId } = groups();
    const reply = await ensureGroup('bob', group('prod-admins'));
    const review = await as('carol', 'POST', `/v1/access/requests/${reply.body.grants[0].access_request_id}/review`, { decision: 'approve' });
    assert.equal(review.status, 200, JSON.stringify(review.body));
    const grant = await reaching('bob', reply.body.grants[0].id, 'active');
    const userId = await userIdOf('bob');
    const { GroupMemberships = [] } = await current().identity.send(new ListGroupMembershipsForMemberCommand({ IdentityStoreId: identityStoreId, MemberId: { UserId: userId } }));
    const membership = GroupMemberships.find((m) => m.GroupId === ids.prodAdmins)!;
    await current().identity.send(new DeleteGroupMembershipCommand({ IdentityStoreId: identityStoreId, MembershipId: membership.MembershipId! }));
    assert.equal(await isMember('bob', ids.prodAdmins), false);

    const report = await reconcile();
    assert.equal(report.restored.find((r) => r.grantId === grant.id)?.outcome, 'restored', JSON.stringify(report.restored));
    assert.ok(await isMember('bob', ids.prodAdmins), 're-created');
    const after = await reaching('bob', grant.id, 'active');
    assert.ok(after.diagnostics.some((d) => d.code === 'assignment_restored'), JSON.stringify(after.diagnostics));
    await as('bob', 'POST', `/v1/access/grants/${grant.id}/revoke`, { reason: 'done' });
    await reaching('bob', grant.id, 'revoked');
    assert.equal(await isMember('bob', ids.prodAdmins), false);
  });

  it('reconciliation removes the membership a terminated grant left, and leaves a membership no grant made', async () => {
    const { ids, identityStoreId } = groups();
    const reply = await ensureGroup('fred', group('data-admins'), { duration: 600 });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = await reaching('fred', reply.body.grants[0].id, 'active');
    await current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: GROUPS_TENANT.id, principalId: USERS.fred.sub, target: group('data-admins'), role: 'member' })).terminate('test: operator terminates');
    assert.ok(await isMember('fred', ids.dataAdmins), 'left behind by the terminated run');
    // sam was made a member by hand: no grant's.
    await current().identity.send(new CreateGroupMembershipCommand({ IdentityStoreId: identityStoreId, GroupId: ids.dataAdmins, MemberId: { UserId: await userIdOf('sam') } }));

    const round = `reconcile-test/${randomUUID()}`;
    const report = await reconcile(round);
    await recordRun('group-reconcile-removes-leftover', `WorkflowId = '${round}'`);
    const entry = report.removed.find((r) => r.grantId === grant.id);
    assert.equal(entry?.removed, true, JSON.stringify(report.removed));
    assert.equal(await isMember('fred', ids.dataAdmins), false);
    assert.ok(await isMember('sam', ids.dataAdmins), 'a membership no grant made stays');
    const samId = await userIdOf('sam');
    assert.ok(report.foreign.some((a) => a.accountId === `group:${ids.dataAdmins}` && a.principalId === samId), 'reported as not ours');
    const next = await reconcile();
    assert.equal(next.removed.length, 0, JSON.stringify(next.removed));
    assert.ok(await isMember('sam', ids.dataAdmins));
  });

  it('refuses, for a tenant that owns only its accounts, a group assigned on an account not its own, and a configured id that names another group', async () => {
    const { ids } = groups();
    const tenant = loadConfig(current().stack.configPath).tenants.find((t) => t.id === GROUPS_TENANT.id)!;
    const assignment = {
      InstanceArn: current().stack.instanceArnOf(GROUPS_TENANT.id),
      TargetId: '222200000001',
      TargetType: 'AWS_ACCOUNT' as const,
      PermissionSetArn: await permissionSetArnOf('ReadOnlyAccess', GROUPS_TENANT.id),
      PrincipalType: 'GROUP' as const,
      PrincipalId: ids.restricted,
    };
    // The worker's own look before a membership is made (findAssignment), with the tenant's config changed.
    const look = (changed: Partial<typeof tenant>) =>
      createActivities({ tenants: [{ ...tenant, ...changed }] }).findAssignment({ tenantId: GROUPS_TENANT.id, accountId: '', role: 'member', group: 'restricted', principal: { id: USERS.fred.sub, email: USERS.fred.email } });
    const refused = (type: string, message: RegExp) => (err: unknown) => err instanceof ApplicationFailure && err.type === type && err.nonRetryable && message.test(err.message);
    await current().sso.send(new CreateAccountAssignmentCommand(assignment));
    try {
      await assert.rejects(look({ accounts_only: true, accounts: { '222200000002': { environment: 'staging' } } }), refused('GroupOutsideTenant', /assigned on account 222200000001, which is not one of tenant/));
      assert.equal((await look({ accounts_only: true, accounts: { '222200000001': { environment: 'staging' } } })).exists, false, 'its assignments all on its own accounts: granted as before');
      assert.equal((await look({})).exists, false, 'a tenant not limited to its accounts is not asked');
      const mislabelled = tenant.groups.map((g) => (g.name === 'restricted' ? { ...g, id: ids.payroll } : g));
      await assert.rejects(look({ groups: mislabelled }), refused('GroupMismatch', /is "payroll" in identity store .*, not "restricted" as the config says/));
    } finally {
      await current().sso.send(new DeleteAccountAssignmentCommand(assignment));
    }
  });
});
