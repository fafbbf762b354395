// Sessions that end with the grant (`aws.revoke_sessions`, issue 22 §2), against moto: the Deny
// statements in the permission set's inline policy, the customer's own statements kept, the
// permission set provisioned again to the account, pruning, and failures that never hold up the
// assignment's deletion.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CreatePermissionSetCommand,
  DeleteInlinePolicyFromPermissionSetCommand,
  GetInlinePolicyForPermissionSetCommand,
  PutInlinePolicyToPermissionSetCommand,
  UpdatePermissionSetCommand,
} from '@aws-sdk/client-sso-admin';
import { SESSION_CUTOFF_MARGIN_MS } from '../src/activities';
import { env, loadConfig } from '../src/config';
import type { GrantView } from '../src/domain/grant';
import type { ReconcileReport } from '../src/workflows/reconcile';
import { grantStateQuery, sessionCutoffSignal, sessionsAppliedQuery, sessionsRevokedSignal, sessionsWorkflowId } from '../src/workflows/messages';
import { grantWorkflowId } from '../src/domain/grant';
import { changedAccounts, CUTOFF_SID_PREFIX, fitInlinePolicy, INLINE_POLICY_MAX_CHARS, parseInlinePolicy, renderInlinePolicy, sessionSecondsOf, withCutoffs, writtenCutoff } from '../src/domain/sessions';
import { grantEvents } from './support/audit';
import { assignmentsOf, call, current, deleteReconcileSchedule, ensure, eventually, freshAccount as mainAccount, grantReaching, OTHER_TENANT, permissionSetArnOf, reconciliationRound, recordHistory, recordRun, SESSIONS_ACCOUNTS, SESSIONS_TENANT, target, userIdOf } from './support/world';

// The tenant's own accounts (it shares moto's instance): each test takes its own.
const accounts = [...SESSIONS_ACCOUNTS];
const freshAccount = () => accounts.shift()!;

type Statement = { Sid?: string; Effect: string; Condition?: any };

async function inlinePolicy(role: string): Promise<Statement[]> {
  const { sso, stack } = current();
  const { InlinePolicy } = await sso.send(
    new GetInlinePolicyForPermissionSetCommand({ InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), PermissionSetArn: await permissionSetArnOf(role, SESSIONS_TENANT.id) }),
  );
  return InlinePolicy ? JSON.parse(InlinePolicy).Statement : [];
}

async function setInlinePolicy(role: string, statements: Statement[] | null): Promise<void> {
  const { sso, stack } = current();
  const ids = { InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), PermissionSetArn: await permissionSetArnOf(role, SESSIONS_TENANT.id) };
  if (statements === null) await sso.send(new DeleteInlinePolicyFromPermissionSetCommand(ids));
  else await sso.send(new PutInlinePolicyToPermissionSetCommand({ ...ids, InlinePolicy: JSON.stringify({ Version: '2012-10-17', Statement: statements }) }));
}

/** Runs `check` after a reconciliation round of the tenant has completed (and read its permission sets' session durations). */
async function afterReconciliation(tenantId: string, check: (report: ReconcileReport) => Promise<void>): Promise<void> {
  try {
    await check(await reconciliationRound(tenantId));
  } finally {
    await deleteReconcileSchedule(tenantId);
  }
}

/** Our statement for this user in this account, if there is one; never two. */
function cutoffOf(statements: Statement[], userId: string, account: string): Statement | undefined {
  const ours = statements.filter((s) => {
    const users = s.Condition?.StringEquals?.['identitystore:userId'];
    return s.Sid?.startsWith(CUTOFF_SID_PREFIX) && (users === userId || (Array.isArray(users) && users.includes(userId))) && s.Condition.StringEquals['aws:PrincipalAccount'] === account;
  });
  assert.ok(ours.length <= 1, `one statement per user and account: ${JSON.stringify(ours)}`);
  return ours[0];
}

/** Hands a cut-off to the permission set's workflow (started if need be), as a reconciliation's removal does: no grant to tell. */
function handIn(permissionSetArn: string, cutoff: { userId: string; accountId: string; at: string }, tenantId = SESSIONS_TENANT.id) {
  return current().temporal.workflow.signalWithStart('sessionsWorkflow', {
    workflowId: sessionsWorkflowId(permissionSetArn),
    taskQueue: env.taskQueue,
    args: [{ permissionSetArn, tenantId }],
    signal: sessionCutoffSignal,
    signalArgs: [{ tenantId, ...cutoff }],
  });
}

/** Each user and account's moment in a written policy text. */
function momentsIn(text: string | null): Map<string, string> {
  return new Map(parseInlinePolicy(text ?? undefined).ours.flatMap((s) => s.userIds.map((u) => [`${u}|${s.accountId}`, s.at] as const)));
}

async function createPermissionSet(name: string, SessionDuration = 'PT1H'): Promise<string> {
  const { sso, stack } = current();
  const created = await sso.send(new CreatePermissionSetCommand({ InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), Name: name, SessionDuration }));
  return created.PermissionSet!.PermissionSetArn!;
}

async function activeGrant(user: 'sid' | 'sue', account: string, role = 'ReadOnlyAccess'): Promise<GrantView> {
  const reply = await call('POST', '/v1/access/ensure', { as: user, body: { entitlements: [{ target: target(account), role, duration_seconds: 600 }], justification: { reason: 'sessions' } } });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return grantReaching(reply.body.grants[0].id, 'active', user);
}

const revoke = (user: 'sid' | 'sue', id: string) => call('POST', `/v1/access/grants/${id}/revoke`, { as: user, body: { reason: 'done' } });

/** The grant once it says its sessions were ended. */
const sessionsEnded = (user: 'sid' | 'sue', id: string, timeoutMs = 30_000) =>
  eventually(`grant ${id} to say its sessions were ended`, async () => {
    const g = (await call<GrantView>('GET', `/v1/access/grants/${id}`, { as: user })).body;
    return g.diagnostics.find((d) => d.code === 'sessions_revoked') ? g : undefined;
  }, timeoutMs);

describe('sessions that end with the grant', function () {
  this.timeout(180_000);
  const CUSTOMER: Statement = { Sid: 'CustomerReadLogs', Effect: 'Allow', Action: 'logs:Get*', Resource: '*' } as Statement;

  beforeEach(async () => {
    await current().sessionsAws.reset();
  });

  // First in the file: the API keeps what it read for a minute, and nothing may have read it before.
  it('policies see the permission set session duration (session_duration_seconds), as the latest reconciliation read it', async () => {
    const { sso, stack } = current();
    await sso.send(new CreatePermissionSetCommand({ InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), Name: 'SessionBound', SessionDuration: 'PT2H' }));
    await afterReconciliation(SESSIONS_TENANT.id, async (report) => {
      assert.equal(report.sessionSeconds?.SessionBound, 7200, JSON.stringify(report.sessionSeconds));
      const ask = (seconds: number) =>
        call('POST', '/v1/access/ensure', { as: 'sid', body: { entitlements: [{ target: target(SESSIONS_ACCOUNTS[0]), role: 'SessionBound', duration_seconds: seconds }], dry_run: true } });
      const short = await ask(3600);
      assert.equal(short.status, 403, JSON.stringify(short.body));
      assert.deepEqual(short.body.notices, ["SessionBound grants must last at least the permission set's session duration."]);
      const long = await ask(7200);
      assert.equal(long.status, 200, JSON.stringify(long.body));
      assert.equal(long.body.grants[0].change, 'activated');
    });
  });

  it('without aws.revoke_sessions, the ensure answer (a dry run too) warns that sessions may outlive the grant once the API knows the session duration', async () => {
    await afterReconciliation(OTHER_TENANT.id, async (report) => {
      assert.equal(report.sessionSeconds?.ReadOnlyAccess, 3600, JSON.stringify(report.sessionSeconds));
      const account = mainAccount();
      const ask = (seconds: number, dryRun: boolean) =>
        ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: seconds }], { as: 'oscar', dryRun });
      const warningOf = (reply: Awaited<ReturnType<typeof ask>>) => reply.body.grants?.[0]?.diagnostics.find((d) => d.code === 'session_may_outlive_grant');
      // The API reads the durations again within seconds of a round that found none.
      const dry = await eventually('a dry run that knows the session duration', async () => warningOf(await ask(900, true)));
      assert.deepEqual([dry.level, dry.session_duration_seconds, dry.duration_seconds], ['warning', 3600, 900]);
      const made = await ask(900, false);
      assert.equal(made.body.grants[0].change, 'activated', JSON.stringify(made.body));
      assert.deepEqual(warningOf(made), dry, 'the answer that starts the grant says it too');
      assert.equal(warningOf(await ask(7200, true)), undefined, 'a grant as long as the session is not warned');
      const active = await grantReaching(made.body.grants[0].id, 'active', 'oscar');
      assert.equal(active.diagnostics.filter((d) => d.code === 'session_may_outlive_grant').length, 1, JSON.stringify(active.diagnostics));
      await call('POST', `/v1/access/grants/${active.id}/revoke`, { as: 'oscar', body: {} });
    });
  });

  it('a scheduled grant that policy no longer allows at its start is withdrawn there: nothing is made, a withdrawn event and a warning say why', async function () {
    this.timeout(120_000);
    const { sso, stack, sessionsAws } = current();
    const InstanceArn = stack.instanceArnOf(SESSIONS_TENANT.id);
    // Made by the first test when it ran.
    const PermissionSetArn = await permissionSetArnOf('SessionBound', SESSIONS_TENANT.id).catch(() => createPermissionSet('SessionBound', 'PT2H'));
    const sessionLasts = (SessionDuration: string) => sso.send(new UpdatePermissionSetCommand({ InstanceArn, PermissionSetArn, SessionDuration }));
    const schedule = (account: string) =>
      call('POST', '/v1/access/ensure', {
        as: 'sid',
        body: { entitlements: [{ target: target(account), role: 'SessionBound', duration_seconds: 7200 }], justification: { reason: 'later' }, starts_at: new Date(Date.now() + 6_000).toISOString() },
      });
    const [refusedAccount, allowedAccount] = [freshAccount(), freshAccount()];
    try {
      await sessionLasts('PT2H');
      const asked = await schedule(refusedAccount);
      assert.equal(asked.status, 200, JSON.stringify(asked.body));
      assert.deepEqual([asked.body.grants[0].change, asked.body.grants[0].status], ['activated', 'pending']);
      // Before its start, sessions from the permission set may outlast the 2-hour grant: policy forbids that.
      await sessionLasts('PT4H');
      const withdrawn = await grantReaching(asked.body.grants[0].id, 'revoked', 'sid', 60_000);
      const warning = withdrawn.diagnostics.find((d) => d.code === 'start_not_allowed');
      assert.equal(warning?.level, 'warning', JSON.stringify(withdrawn.diagnostics));
      assert.deepEqual(warning!.notices, ["SessionBound grants must last at least the permission set's session duration."]);
      assert.equal(withdrawn.activated_at, null);
      const [event] = (await grantEvents(withdrawn.id, ['withdrawn'], SESSIONS_TENANT.id)).filter((e) => e.event.event === 'withdrawn');
      assert.equal(event.event.actor.id, 'schedule');
      assert.deepEqual(event.event.details.policies, ['session-bound']);
      assert.ok(!(await sessionsAws.stats()).assignmentCalls.some((c) => c.op === 'CreateAccountAssignment' && c.account === refusedAccount), 'nothing was made');
      assert.equal(await assignmentsOf('sid', refusedAccount, 'SessionBound'), 0);

      // The positive control: as it was at the call, it starts.
      await sessionLasts('PT2H');
      const allowed = await schedule(allowedAccount);
      assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
      const active = await grantReaching(allowed.body.grants[0].id, 'active', 'sid', 60_000);
      assert.ok(!active.diagnostics.some((d) => d.code === 'start_not_allowed'));
      await revoke('sid', active.id);
    } finally {
      await sessionLasts('PT2H');
    }
  });

  it('a revoked grant adds a Deny for the user sessions issued before the deletion, keeps the customer statement, and provisions the account again', async () => {
    await setInlinePolicy('ReadOnlyAccess', [CUSTOMER]);
    const account = freshAccount();
    const grant = await activeGrant('sid', account);
    const asked = Date.now();
    const revoked = await revoke('sid', grant.id);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(await assignmentsOf('sid', account, 'ReadOnlyAccess'), 0, 'the assignment is gone first');

    const ended = await sessionsEnded('sid', grant.id);
    const cutoff = ended.diagnostics.find((d) => d.code === 'sessions_revoked')!.sessions_issued_before as string;
    // The deletion, plus the margin for clock skew.
    assert.ok(Date.parse(cutoff) >= asked + SESSION_CUTOFF_MARGIN_MS && Date.parse(cutoff) <= Date.now() + SESSION_CUTOFF_MARGIN_MS, cutoff);
    const statements = await inlinePolicy('ReadOnlyAccess');
    assert.deepEqual(statements.find((s) => s.Sid === 'CustomerReadLogs'), CUSTOMER, 'the customer statement is kept as it was');
    const ours = cutoffOf(statements, await userIdOf('sid'), account);
    assert.ok(ours, JSON.stringify(statements));
    assert.equal(ours.Effect, 'Deny');
    assert.deepEqual([(ours as any).Action, (ours as any).Resource], ['*', '*']);
    assert.equal(ours.Condition.DateLessThan['aws:TokenIssueTime'], cutoff, 'only sessions issued before the deletion');

    const { assignmentCalls } = await current().sessionsAws.stats();
    assert.ok(assignmentCalls.some((c) => c.op === 'ProvisionPermissionSet' && c.account === account), JSON.stringify(assignmentCalls));
    const [event] = (await grantEvents(grant.id, ['sessions_revoked'], SESSIONS_TENANT.id)).filter((e) => e.event.event === 'sessions_revoked');
    assert.deepEqual(event.event.details, { user_id: await userIdOf('sid'), account_id: account, sessions_issued_before: cutoff });

    // A later grant's sessions are issued after the cut-off: the statement does not reach them.
    const later = await activeGrant('sid', account);
    assert.ok(Date.parse(later.activated_at!) > Date.parse(cutoff));
    assert.ok(!later.diagnostics.some((d) => d.code.startsWith('session')), JSON.stringify(later.diagnostics));
    await revoke('sid', later.id);
    await sessionsEnded('sid', later.id);
    await recordHistory('revoke-sessions', later.id);
    const replaced = cutoffOf(await inlinePolicy('ReadOnlyAccess'), await userIdOf('sid'), account)!;
    assert.ok(replaced.Condition.DateLessThan['aws:TokenIssueTime'] > cutoff, 'one statement per user and account, with the latest cut-off');
  });

  it('the cut-off is no earlier than the deletion by AWS clock, when AWS clock runs ahead of ours', async () => {
    const account = freshAccount();
    const grant = await activeGrant('sid', account);
    // AWS's clock 10 s ahead of ours: it dates the deletion then.
    const awsTime = Date.now() + 10_000;
    await current().sessionsAws.on('DeleteAccountAssignment', { createdAtMs: awsTime });
    await revoke('sid', grant.id);
    // The grant hears it once the cut-off has passed.
    const ended = await sessionsEnded('sid', grant.id, 60_000);
    const cutoff = ended.diagnostics.find((d) => d.code === 'sessions_revoked')!.sessions_issued_before as string;
    assert.ok(Date.now() >= Date.parse(cutoff));
    assert.equal(Date.parse(cutoff), awsTime + SESSION_CUTOFF_MARGIN_MS, `${cutoff}: AWS's time of the deletion and the margin`);
    assert.equal(cutoffOf(await inlinePolicy('ReadOnlyAccess'), await userIdOf('sid'), account)?.Condition.DateLessThan['aws:TokenIssueTime'], cutoff);
  });

  it('without aws.revoke_sessions, a grant shorter than the session duration is warned that sessions may outlive it', async () => {
    const short = (await ensure([{ target: target(mainAccount()), role: 'ReadOnlyAccess', duration_seconds: 900 }])).body.grants[0];
    const long = (await ensure([{ target: target(mainAccount()), role: 'ReadOnlyAccess', duration_seconds: 7200 }])).body.grants[0];
    const warned = await grantReaching(short.id, 'active');
    const warning = warned.diagnostics.find((d) => d.code === 'session_may_outlive_grant');
    assert.equal(warning?.level, 'warning', JSON.stringify(warned.diagnostics));
    // moto, as AWS, gives a permission set made without one a session duration of an hour.
    assert.deepEqual([warning!.session_duration_seconds, warning!.duration_seconds], [3600, 900]);
    assert.match(warning!.message, /3600 s .* 900 s/);
    const fine = await grantReaching(long.id, 'active');
    assert.ok(!fine.diagnostics.some((d) => d.code === 'session_may_outlive_grant'), JSON.stringify(fine.diagnostics));
    for (const g of [short, long]) await call('POST', `/v1/access/grants/${g.id}/revoke`, { body: {} });
  });

  it('two grants ending at once on one permission set both get their statement (one writer at a time)', async () => {
    const [a, b] = [freshAccount(), freshAccount()];
    const [sid, sue] = await Promise.all([activeGrant('sid', a), activeGrant('sue', b)]);
    const revoked = await Promise.all([revoke('sid', sid.id), revoke('sue', sue.id)]);
    assert.deepEqual(revoked.map((r) => r.status), [200, 200]);
    await Promise.all([sessionsEnded('sid', sid.id), sessionsEnded('sue', sue.id)]);
    const statements = await inlinePolicy('ReadOnlyAccess');
    assert.ok(cutoffOf(statements, await userIdOf('sid'), a), JSON.stringify(statements));
    assert.ok(cutoffOf(statements, await userIdOf('sue'), b), JSON.stringify(statements));
    assert.ok(!cutoffOf(statements, await userIdOf('sid'), b) && !cutoffOf(statements, await userIdOf('sue'), a), 'nobody is denied in the other account');
  });

  it('a statement is pruned once the permission set session duration has passed, and the account provisioned again', async () => {
    const { sso, stack } = current();
    const role = `Short${process.pid % 100000}`;
    const created = await sso.send(new CreatePermissionSetCommand({ InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), Name: role, SessionDuration: 'PT10S' }));
    const account = freshAccount();
    const grant = await activeGrant('sid', account, role);
    await revoke('sid', grant.id);
    await sessionsEnded('sid', grant.id);
    assert.ok(cutoffOf(await inlinePolicy(role), await userIdOf('sid'), account), 'in place first');
    await eventually('the statement to be pruned', async () => ((await inlinePolicy(role)).length === 0 ? true : undefined), 60_000);
    // Once with the statement, once without it (the provisioning follows the write).
    await eventually('the account to be provisioned again without it', async () => {
      const provisioned = (await current().sessionsAws.stats()).assignmentCalls.filter((c) => c.op === 'ProvisionPermissionSet' && c.account === account);
      return provisioned.length === 2 ? true : undefined;
    });
    const sessions = sessionsWorkflowId(created.PermissionSet!.PermissionSetArn!);
    await eventually('the sessions workflow to complete', async () => ((await current().temporal.workflow.getHandle(sessions).describe()).status.name === 'COMPLETED' ? true : undefined));
    await recordRun('sessions-cutoff-prune', `WorkflowId = '${sessions}'`);
  });

  it('pruning waits for the longest session duration the permission set had since the cut-off, not the current one', async function () {
    this.timeout(120_000);
    const { sso, stack } = current();
    const role = `Shrink${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role, 'PT30S');
    const [first, second] = [freshAccount(), freshAccount()];
    const sid = await userIdOf('sid');
    const a = await activeGrant('sid', first, role);
    await revoke('sid', a.id);
    const cutoff = (await sessionsEnded('sid', a.id)).diagnostics.find((d) => d.code === 'sessions_revoked')!.sessions_issued_before as string;
    // Sessions issued before the cut-off may last 30 s; the permission set now says 5 s.
    await sso.send(new UpdatePermissionSetCommand({ InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), PermissionSetArn: permissionSetArn, SessionDuration: 'PT5S' }));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(cutoff) + 8_000 - Date.now())));
    const b = await activeGrant('sid', second, role);
    await revoke('sid', b.id);
    await sessionsEnded('sid', b.id);
    assert.ok(Date.now() < Date.parse(cutoff) + 30_000, 'the test ran within the first session duration');
    const statements = await inlinePolicy(role);
    assert.ok(cutoffOf(statements, sid, second), JSON.stringify(statements));
    assert.ok(cutoffOf(statements, sid, first), 'a session of the first grant may still be open: its statement stays');
    await eventually('the first statement to be pruned after 30 s', async () => (cutoffOf(await inlinePolicy(role), sid, first) ? undefined : true), 60_000);
    assert.ok(Date.now() >= Date.parse(cutoff) + 30_000);
  });

  it('a flood of ends on one permission set goes on in a new run (continue-as-new) and loses none', async function () {
    this.timeout(300_000);
    const { sso, stack, temporal } = current();
    const role = `Flood${process.pid % 100000}`;
    const created = await sso.send(new CreatePermissionSetCommand({ InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), Name: role, SessionDuration: 'PT1H' }));
    const permissionSetArn = created.PermissionSet!.PermissionSetArn!;
    const workflowId = sessionsWorkflowId(permissionSetArn);
    const account = freshAccount();
    const users = Array.from({ length: 25 }, (_, u) => `f1000000-0000-4000-8000-${String(u).padStart(12, '0')}`);
    // Past the 2,000 events after which a run goes on in a new one. Each end has a moment of its
    // own, and they are sent in a shuffled order: a user's latest is anywhere in the flood (around
    // the continue-as-new too), not the last signal sent, so a workflow that dropped signals fails.
    const base = Date.now() - 600_000;
    const inOrder = Array.from({ length: 2100 }, (_, i) => ({ userId: users[i % users.length], at: new Date(base + i * 10).toISOString() }));
    const seed = Date.now() % 100_000;
    const [ends] = fc.sample(fc.shuffledSubarray(inOrder, { minLength: inOrder.length }), { seed, numRuns: 1 });
    const latest = new Map<string, string>();
    for (const e of ends) if ((latest.get(e.userId) ?? '') < e.at) latest.set(e.userId, e.at);
    // Handed in as a reconciliation's removals are (no grant to tell), 100 at a time.
    for (let from = 0; from < ends.length; from += 100) {
      await Promise.all(
        ends.slice(from, from + 100).map(({ userId, at }) => handIn(permissionSetArn, { userId, accountId: account, at })),
      );
    }
    await eventually(
      `every user to have their latest cut-off (shuffle seed ${seed})`,
      async () => {
        const statements = await inlinePolicy(role);
        return users.every((u) => cutoffOf(statements, u, account)?.Condition.DateLessThan['aws:TokenIssueTime'] === latest.get(u)) ? statements : undefined;
      },
      240_000,
    );
    const handle = temporal.workflow.getHandle(workflowId);
    await eventually('the workflow to say it applied every cut-off', async () => ((await handle.query(sessionsAppliedQuery)) === ends.length ? true : undefined), 60_000);
    await eventually('the flood to have gone on in a new run', async () => {
      const { count } = await temporal.workflow.count(`WorkflowId = '${workflowId}' AND ExecutionStatus = 'ContinuedAsNew'`);
      return count >= 1 ? count : undefined;
    });
    await handle.terminate('test: done');
  });

  it('15 grants on one permission set in 15 accounts end together while provisioning is slow: every Deny lands, none is lost across a continue-as-new, no write is older than the one before', async function () {
    this.timeout(300_000);
    const { temporal, sessionsAws } = current();
    const role = `Slow${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role);
    const workflowId = sessionsWorkflowId(permissionSetArn);
    const ends = Array.from({ length: 15 }, () => freshAccount());
    const grants = await Promise.all(ends.map((a) => activeGrant('sid', a, role)));
    // Each provisioning takes 8 s at "AWS" (15 in a row: longer than any one activity of the old
    // writer could run), the first writes fail, and the permission set's workflow is busy with
    // an earlier end (a reconciliation's: no grant to tell) and goes on in a new run past 40 events.
    await sessionsAws.on('ProvisionPermissionSet', { delayMs: 8_000 });
    await sessionsAws.on('PutInlinePolicyToPermissionSet', { status: 500, times: 10 });
    const [sid, sue] = [await userIdOf('sid'), await userIdOf('sue')];
    const earlier = { tenantId: SESSIONS_TENANT.id, userId: sue, accountId: ends[0], at: new Date().toISOString() };
    await temporal.workflow.start('sessionsWorkflow', { workflowId, taskQueue: env.taskQueue, args: [{ permissionSetArn, tenantId: SESSIONS_TENANT.id, pending: [earlier], historyLimit: 40 }] });
    try {
      // 15 deletions at once: the instance's pacer is busy with them while the cut-offs come in.
      const revoked = await Promise.all(grants.map((g) => revoke('sid', g.id)));
      assert.deepEqual(revoked.map((r) => r.status), grants.map(() => 200));

      const events = await Promise.all(grants.map((g) => grantEvents(g.id, ['sessions_revoked'], SESSIONS_TENANT.id, 240_000)));
      const statements = await inlinePolicy(role);
      for (const [i, account] of ends.entries()) {
        const ours = cutoffOf(statements, sid, account);
        assert.ok(ours, `sid's Deny in ${account}: ${JSON.stringify(statements)}`);
        const event = events[i].find((e) => e.event.event === 'sessions_revoked')!.event;
        assert.equal(ours.Condition.DateLessThan['aws:TokenIssueTime'], event.details.sessions_issued_before, 'the record says what was written');
        assert.ok(Date.parse(event.details.sessions_issued_before as string) >= Date.parse(grants[i].activated_at!));
      }
      assert.equal(cutoffOf(statements, sue, ends[0])?.Condition.DateLessThan['aws:TokenIssueTime'], earlier.at, 'the earlier end is kept');

      const { assignmentCalls, policyWrites } = await sessionsAws.stats();
      for (const account of ends) assert.ok(assignmentCalls.some((c) => c.op === 'ProvisionPermissionSet' && c.account === account && c.answered), `provisioned to ${account}`);
      const writes = policyWrites.filter((w) => w.permissionSetArn === permissionSetArn).map((w) => momentsIn(w.inlinePolicy));
      assert.ok(writes.length >= 1);
      for (let i = 1; i < writes.length; i++) {
        for (const [key, at] of writes[i - 1]) {
          const next = writes[i].get(key);
          assert.ok(next !== undefined && Date.parse(next) >= Date.parse(at), `write ${i + 1} lost or moved back ${key} (${at} -> ${next})`);
        }
      }
      await eventually('a run of the busy workflow to have gone on in a new one', async () => {
        const { count } = await temporal.workflow.count(`WorkflowId = '${workflowId}' AND ExecutionStatus = 'ContinuedAsNew'`);
        return count >= 1 ? count : undefined;
      });
      await recordRun('sessions-continue-as-new', `WorkflowId = '${workflowId}' AND ExecutionStatus = 'ContinuedAsNew'`);
    } finally {
      await temporal.workflow.getHandle(workflowId).terminate('test: done').catch(() => undefined);
    }
  });

  it('a cut-off handed in for a tenant no longer configured is written with another configured tenant of the instance', async () => {
    const { temporal } = current();
    const role = `Orphan${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role);
    const workflowId = sessionsWorkflowId(permissionSetArn);
    const [account, sue] = [freshAccount(), await userIdOf('sue')];
    const removed = 'a0000000-0000-4000-8000-00000000dead';
    const at = new Date().toISOString();
    await handIn(permissionSetArn, { userId: sue, accountId: account, at }, removed);
    try {
      const written = await eventually('the cut-off to be written', async () => cutoffOf(await inlinePolicy(role), sue, account));
      assert.equal(written.Condition.DateLessThan['aws:TokenIssueTime'], at);
      assert.ok((await current().sessionsAws.stats()).assignmentCalls.some((c) => c.op === 'ProvisionPermissionSet' && c.account === account));
    } finally {
      await temporal.workflow.getHandle(workflowId).terminate('test: done').catch(() => undefined);
    }
  });

  it('a tenant whose credentials AWS refuses gives way to another configured tenant of the instance', async () => {
    const { temporal, sessionsAws } = current();
    const role = `Refused${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role);
    const workflowId = sessionsWorkflowId(permissionSetArn);
    const [account, sue] = [freshAccount(), await userIdOf('sue')];
    // Every call with the sessions tenant's credentials is refused (they go through its proxy; the other tenants' do not).
    await sessionsAws.on('DescribePermissionSet', { error: 'AccessDeniedException' });
    const at = new Date().toISOString();
    await handIn(permissionSetArn, { userId: sue, accountId: account, at });
    try {
      const written = await eventually('the cut-off to be written', async () => cutoffOf(await inlinePolicy(role), sue, account));
      assert.equal(written.Condition.DateLessThan['aws:TokenIssueTime'], at);
      assert.ok((await sessionsAws.count('DescribePermissionSet')) >= 1, 'the sessions tenant was tried first');
      assert.equal(await sessionsAws.count('PutInlinePolicyToPermissionSet'), 0, 'and did not write');
    } finally {
      await temporal.workflow.getHandle(workflowId).terminate('test: done').catch(() => undefined);
    }
  });

  it('a change the customer makes to the policy between the read and the write is kept: the write is worked out again on the new text', async () => {
    const { sso, stack, temporal, sessionsAws } = current();
    const role = `Racing${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role);
    const workflowId = sessionsWorkflowId(permissionSetArn);
    const ids = { InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), PermissionSetArn: permissionSetArn };
    const [account, sue] = [freshAccount(), await userIdOf('sue')];
    // Each read of the policy waits 3 s at "AWS" before it is answered.
    await sessionsAws.on('GetInlinePolicyForPermissionSet', { delayMs: 3_000, times: 2 });
    const at = new Date().toISOString();
    await handIn(permissionSetArn, { userId: sue, accountId: account, at });
    try {
      // The second read (the one just before the write) has arrived and waits: the customer writes now.
      await eventually('the read before the write', async () => ((await sessionsAws.count('GetInlinePolicyForPermissionSet')) >= 2 ? true : undefined));
      const mine = { Sid: 'CustomerAddedMeanwhile', Effect: 'Allow', Action: 'logs:Get*', Resource: '*' };
      await sso.send(new PutInlinePolicyToPermissionSetCommand({ ...ids, InlinePolicy: JSON.stringify({ Version: '2012-10-17', Statement: [mine] }) }));
      const written = await eventually('the cut-off to be written', async () => {
        const statements = await inlinePolicy(role);
        return cutoffOf(statements, sue, account) ? statements : undefined;
      });
      assert.deepEqual(written.find((s) => s.Sid === mine.Sid), mine, 'the customer statement written meanwhile is kept');
      assert.ok((await sessionsAws.count('GetInlinePolicyForPermissionSet')) >= 3, 'read again on the new text');
    } finally {
      await temporal.workflow.getHandle(workflowId).terminate('test: done').catch(() => undefined);
    }
  });

  it('a grant ignores a sessionsRevoked meant for another grant of its key, and takes its own', async () => {
    const { temporal, sessionsAws } = current();
    const account = freshAccount();
    const grant = await activeGrant('sid', account);
    // Refused, not a 5xx: the SDK does not retry it, so later tests' retries are not used up here.
    await sessionsAws.on('PutInlinePolicyToPermissionSet', { error: 'ValidationException' });
    await revoke('sid', grant.id);
    await eventually('the grant to wait for its sessions', async () => {
      const g = (await call<GrantView>('GET', `/v1/access/grants/${grant.id}`, { as: 'sid' })).body;
      return g.diagnostics.some((d) => d.code === 'session_revocation_pending') ? g : undefined;
    });
    const handle = temporal.workflow.getHandle(grantWorkflowId({ tenantId: SESSIONS_TENANT.id, principalId: 'sid', target: target(account), role: 'ReadOnlyAccess' }));
    const stale = new Date(Date.now() - 3_600_000).toISOString();
    await handle.signal(sessionsRevokedSignal, { at: new Date().toISOString(), sessions_issued_before: stale, grant_id: '0190a000-0000-7000-8000-000000000000' });
    const after = await handle.query(grantStateQuery);
    assert.ok(!after.diagnostics.some((d) => d.code === 'sessions_revoked'), JSON.stringify(after.diagnostics));
    // Its own is taken (the positive control), with the moment it carries.
    const mine = new Date().toISOString();
    await handle.signal(sessionsRevokedSignal, { at: mine, sessions_issued_before: mine, grant_id: grant.id });
    const ended = await sessionsEnded('sid', grant.id);
    assert.equal(ended.diagnostics.find((d) => d.code === 'sessions_revoked')!.sessions_issued_before, mine);
    // The permission set's workflow writes it once AWS takes it: nothing of this test is left to retry in the next.
    await sessionsAws.reset();
    const sid = await userIdOf('sid');
    await eventually('the refused cut-off to be written after all', async () => cutoffOf(await inlinePolicy('ReadOnlyAccess'), sid, account), 60_000);
  });

  it('a cut-off that cannot fit in AWS size limit fails visibly (a warning, an audit event) and is written once there is room', async () => {
    const { sso, stack } = current();
    const role = `Full${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role);
    const ids = { InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), PermissionSetArn: permissionSetArn };
    const big = (chars: number) => JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'Big', Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'b'.repeat(chars)}/*` }] });
    const full = big(32_768 - big(0).length - 100);
    await sso.send(new PutInlinePolicyToPermissionSetCommand({ ...ids, InlinePolicy: full }));
    const account = freshAccount();
    const grant = await activeGrant('sid', account, role);
    await revoke('sid', grant.id);
    const warned = await eventually('the grant to say ending sessions failed', async () => {
      const g = (await call<GrantView>('GET', `/v1/access/grants/${grant.id}`, { as: 'sid' })).body;
      return g.diagnostics.find((d) => d.code === 'session_revocation_pending' && d.level === 'warning');
    });
    assert.match(warned.message, /size limit/);
    const failed = (await grantEvents(grant.id, ['sessions_revocation_failed'], SESSIONS_TENANT.id)).find((e) => e.event.event === 'sessions_revocation_failed')!;
    assert.match(String(failed.event.details.message), /size limit/);
    assert.equal((await sso.send(new GetInlinePolicyForPermissionSetCommand(ids))).InlinePolicy, full, 'the customer policy as it was');

    // The customer makes room: the cut-off is written at the next try.
    await sso.send(new PutInlinePolicyToPermissionSetCommand({ ...ids, InlinePolicy: big(1000) }));
    const [event] = (await grantEvents(grant.id, ['sessions_revoked'], SESSIONS_TENANT.id, 90_000)).filter((e) => e.event.event === 'sessions_revoked');
    const ours = cutoffOf(await inlinePolicy(role), await userIdOf('sid'), account);
    assert.equal(ours?.Condition.DateLessThan['aws:TokenIssueTime'], event.event.details.sessions_issued_before);
  });

  it('over AWS size limit, one account cut-offs of a minute share a statement at its end, and only the accounts whose statements changed are provisioned again', async () => {
    const { sso, stack, temporal, sessionsAws } = current();
    const role = `Big${process.pid % 100000}`;
    const permissionSetArn = await createPermissionSet(role);
    const workflowId = sessionsWorkflowId(permissionSetArn);
    const ids = { InstanceArn: stack.instanceArnOf(SESSIONS_TENANT.id), PermissionSetArn: permissionSetArn };
    const customer = JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'Big', Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'b'.repeat(30_000)}/*` }] });
    await sso.send(new PutInlinePolicyToPermissionSetCommand({ ...ids, InlinePolicy: customer }));
    const [a, b, c] = [freshAccount(), freshAccount(), freshAccount()];
    const users = Array.from({ length: 12 }, (_, u) => `b1000000-0000-4000-8000-${String(u).padStart(12, '0')}`);
    // Twelve ends in one minute in account a, one in b: a statement each would not fit.
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    const ends = [...users.map((userId, u) => ({ userId, accountId: a, at: new Date(minute + 1_000 + u * 4_000).toISOString() })), { userId: users[0], accountId: b, at: new Date(minute + 30_000).toISOString() }];
    try {
      // All in the first round: the workflow starts with them in hand.
      await temporal.workflow.start('sessionsWorkflow', {
        workflowId,
        taskQueue: env.taskQueue,
        args: [{ permissionSetArn, tenantId: SESSIONS_TENANT.id, pending: ends.map((c) => ({ tenantId: SESSIONS_TENANT.id, ...c })) }],
      });
      const handle = temporal.workflow.getHandle(workflowId);
      await eventually('every cut-off to be applied', async () => ((await handle.query(sessionsAppliedQuery)) === ends.length ? true : undefined), 60_000);
      const written = (await sso.send(new GetInlinePolicyForPermissionSetCommand(ids))).InlinePolicy!;
      assert.ok(written.length <= INLINE_POLICY_MAX_CHARS, String(written.length));
      const statements = JSON.parse(written).Statement as Statement[];
      assert.deepEqual(statements[0], JSON.parse(customer).Statement[0], 'the customer statement as it was');
      const bucketEnd = new Date(minute + 60_000).toISOString();
      for (const e of ends) {
        const ours = cutoffOf(statements, e.userId, e.accountId);
        assert.equal(ours?.Condition.DateLessThan['aws:TokenIssueTime'], bucketEnd, `${e.userId} in ${e.accountId}: the end of the minute, never earlier than ${e.at}`);
      }
      const provisioned = () => sessionsAws.stats().then((s) => s.assignmentCalls.filter((x) => x.op === 'ProvisionPermissionSet').map((x) => x.account).sort());
      assert.deepEqual(await provisioned(), [a, b]);

      // One more end, in c: only c's statements change, so only c is provisioned again.
      await sessionsAws.reset();
      const later = { userId: users[1], accountId: c, at: new Date().toISOString() };
      await handIn(permissionSetArn, later);
      await eventually('the cut-off in c to be applied', async () => ((await handle.query(sessionsAppliedQuery)) === ends.length + 1 ? true : undefined), 60_000);
      const after = JSON.parse((await sso.send(new GetInlinePolicyForPermissionSetCommand(ids))).InlinePolicy!).Statement as Statement[];
      assert.ok(cutoffOf(after, later.userId, c), JSON.stringify(after));
      assert.deepEqual(await provisioned(), [c]);
      for (const e of ends) assert.equal(cutoffOf(after, e.userId, e.accountId)?.Condition.DateLessThan['aws:TokenIssueTime'], bucketEnd);
    } finally {
      await temporal.workflow.getHandle(workflowId).terminate('test: done').catch(() => undefined);
    }
  });

  it('a failing PutInlinePolicyToPermissionSet is retried and shown; the assignment is deleted on time all the same', async () => {
    await setInlinePolicy('ReadOnlyAccess', null);
    const account = freshAccount();
    const grant = await activeGrant('sid', account);
    // The SDK tries each call five times, the activity twice: the first round fails, the second gets through.
    await current().sessionsAws.on('PutInlinePolicyToPermissionSet', { status: 500, times: 12 });
    const revoked = await revoke('sid', grant.id);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await assignmentsOf('sid', account, 'ReadOnlyAccess'), 0, 'not held up by the sessions');
    const failing = await eventually('the failure to show on the grant', async () => {
      const g = (await call<GrantView>('GET', `/v1/access/grants/${grant.id}`, { as: 'sid' })).body;
      return g.diagnostics.find((d) => d.code === 'session_revocation_pending' && d.level === 'warning');
    });
    assert.match(failing.message, /failed .*still retrying/, failing.message);
    const ended = await sessionsEnded('sid', grant.id, 90_000);
    assert.ok(!ended.diagnostics.some((d) => d.code === 'session_revocation_pending'));
    assert.ok(cutoffOf(await inlinePolicy('ReadOnlyAccess'), await userIdOf('sid'), account));
    assert.ok((await current().sessionsAws.count('PutInlinePolicyToPermissionSet')) >= 12);
  });
});

describe('session cut-off statements (the rules)', () => {
  const customer = { Sid: 'Mine', Effect: 'Allow', Action: 's3:GetObject', Resource: '*' };
  const at = (minute: number, second = 0) => new Date(Date.UTC(2026, 11, 4, 12, minute, second)).toISOString();
  const statementsOf = <S extends { userIds: string[]; accountId: string }>(ours: S[], userId: string, accountId: string) =>
    ours.filter((s) => s.accountId === accountId && s.userIds.includes(userId));

  it('keeps the customer statements, one statement per user and account with the latest cut-off, and prunes after the session duration', () => {
    const policy = parseInlinePolicy(JSON.stringify({ Version: '2012-10-17', Statement: customer }));
    assert.deepEqual(policy.others, [customer]);
    const first = withCutoffs(policy.ours, [{ userId: 'u1', accountId: '111111111111', at: at(0) }, { userId: 'u2', accountId: '111111111111', at: at(1) }], new Date(at(2)), 3600);
    const second = withCutoffs(first.kept, [{ userId: 'u1', accountId: '111111111111', at: at(5) }], new Date(at(6)), 3600);
    assert.deepEqual(second.kept.map((c) => [c.userIds, c.at]), [[['u2'], at(1)], [['u1'], at(5)]]);
    const text = renderInlinePolicy({ ...policy, ours: second.kept });
    const back = parseInlinePolicy(text);
    assert.deepEqual(back.others, [customer]);
    assert.deepEqual(back.ours, second.kept, 'what is written reads back the same');
    const later = withCutoffs(back.ours, [], new Date(Date.parse(at(1)) + 3600_000 + 1), 3600);
    assert.deepEqual(later.pruned.map((c) => c.userIds), [['u2']]);
    assert.deepEqual(later.kept.map((c) => c.userIds), [['u1']]);
  });

  it('over the size limit, merges one account cut-offs of the same minute at its end: never earlier than a user own, never across accounts', () => {
    const cutoffs = Array.from({ length: 300 }, (_, i) => ({
      userId: `9067${String(i).padStart(6, '0')}-aaaa-bbbb-cccc-dddddddddddd`,
      accountId: i % 2 ? '111111111111' : '222222222222',
      at: new Date(Date.parse(at(0)) + i * 2_000).toISOString(),
    }));
    const { kept } = withCutoffs([], cutoffs, new Date(at(55)), 3600);
    const policy = { header: { Version: '2012-10-17' }, others: [customer], ours: kept, lookalikes: [] };
    assert.ok(renderInlinePolicy(policy).length > INLINE_POLICY_MAX_CHARS, 'the test starts over the limit');
    const fitted = fitInlinePolicy(policy)!;
    assert.ok(renderInlinePolicy(fitted.policy).length <= INLINE_POLICY_MAX_CHARS);
    assert.equal(fitted.bucketSeconds, 60, 'the smallest bucket that fits');
    assert.deepEqual(fitted.policy.others, [customer]);
    for (const c of cutoffs) {
      const [s, ...more] = statementsOf(fitted.policy.ours, c.userId, c.accountId);
      assert.ok(s && more.length === 0, 'every user is denied in their account, by exactly one statement');
      assert.ok(Date.parse(s.at) >= Date.parse(c.at), `never earlier than the user own cut-off: ${s.at} < ${c.at}`);
      assert.ok(Date.parse(s.at) - Date.parse(c.at) < 60_000, 'at most to the end of its minute');
      assert.equal(writtenCutoff(fitted.policy.ours, c.userId, c.accountId), s.at);
    }
    for (const s of fitted.policy.ours) assert.ok(s.userIds.every((u) => cutoffs.some((c) => c.userId === u && c.accountId === s.accountId)), 'never across accounts');

    // A later end of a merged user: they appear once, with the later moment.
    const again = withCutoffs(fitted.policy.ours, [{ ...cutoffs[0], at: at(58) }], new Date(at(58)), 3600);
    assert.deepEqual(statementsOf(again.kept, cutoffs[0].userId, cutoffs[0].accountId).map((s) => s.at), [at(58)]);
    assert.deepEqual(changedAccounts(fitted.policy.ours, again.kept), [cutoffs[0].accountId], 'only that account changed');

    const hopeless = { ...policy, others: [{ Sid: 'Big', Effect: 'Allow', Action: 'x'.repeat(INLINE_POLICY_MAX_CHARS), Resource: '*' }] };
    assert.equal(fitInlinePolicy(hopeless), undefined);
  });

  it('leaves the customer statements exactly as they were: look-alikes of ours, their Sids, non-ASCII text, Id and an absent Version', () => {
    const lookalikes = [
      { Sid: `${CUTOFF_SID_PREFIX}Mine`, Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringEquals: { 'identitystore:userId': 'u9', 'aws:PrincipalAccount': '111111111111' }, DateLessThan: { 'aws:TokenIssueTime': at(0) }, Bool: { 'aws:MultiFactorAuthPresent': 'false' } } },
      { Sid: `${CUTOFF_SID_PREFIX}Allow`, Effect: 'Allow', Action: '*', Resource: '*', Condition: { StringEquals: { 'identitystore:userId': 'u9', 'aws:PrincipalAccount': '111111111111' }, DateLessThan: { 'aws:TokenIssueTime': at(0) } } },
    ];
    const unicode = { Sid: 'Logs', Effect: 'Allow', Action: 'logs:Get*', Resource: 'arn:aws:logs:*:*:log-group:équipe-日本-🚀' };
    const text = JSON.stringify({ Id: 'customer-policy', Statement: [unicode, ...lookalikes] });
    const policy = parseInlinePolicy(text);
    assert.deepEqual(policy.ours, [], 'a statement with our prefix but not exactly our shape is not ours');
    assert.deepEqual(policy.lookalikes, lookalikes.map((s) => s.Sid), 'and it is reported');
    const { kept } = withCutoffs(policy.ours, [{ userId: 'u1', accountId: '111111111111', at: at(1) }], new Date(at(2)), 3600);
    const written = renderInlinePolicy({ ...policy, ours: kept });
    assert.match(written, /^[\t\n\r\x20-\xff]*$/, 'only what AWS takes');
    assert.ok(written.includes('\\u65e5\\u672c'), written);
    const doc = JSON.parse(written);
    assert.equal(doc.Id, 'customer-policy');
    assert.ok(!('Version' in doc), 'no Version where the customer wrote none');
    assert.deepEqual(doc.Statement.slice(0, 3), [unicode, ...lookalikes], 'the customer statements read back exactly');
    const back = parseInlinePolicy(written);
    assert.deepEqual(back.ours, kept);
    const sids = doc.Statement.map((s: Statement) => s.Sid);
    assert.equal(new Set(sids).size, sids.length);
    // A customer statement that took our Sid for this user and account keeps it; ours gets another.
    const taken = renderInlinePolicy({ ...policy, others: [...policy.others, { Sid: sids[3], Effect: 'Allow', Action: 's3:List*', Resource: '*' }], ours: kept });
    const takenSids = JSON.parse(taken).Statement.map((s: Statement) => s.Sid);
    assert.equal(new Set(takenSids).size, takenSids.length, JSON.stringify(takenSids));
    assert.deepEqual(parseInlinePolicy(taken).ours, kept);
  });

  it('reads session durations as AWS writes them', () => {
    assert.deepEqual(['PT1H', 'PT12H', 'PT30M', 'PT1H30M', 'PT10S', undefined, 'P1D'].map(sessionSecondsOf), [3600, 43200, 1800, 5400, 10, 3600, 3600]);
  });
});
