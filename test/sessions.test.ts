// Sessions that end with the grant (`aws.revoke_sessions`, issue 22 §2), against moto: the Deny
// statements in the permission set's inline policy, the customer's own statements kept, the
// permission set provisioned again to the account, pruning, and failures that never hold up the
// assignment's deletion.
import assert from 'node:assert/strict';
import {
  CreatePermissionSetCommand,
  DeleteInlinePolicyFromPermissionSetCommand,
  GetInlinePolicyForPermissionSetCommand,
  PutInlinePolicyToPermissionSetCommand,
} from '@aws-sdk/client-sso-admin';
import { env, loadConfig } from '../src/config';
import type { GrantView } from '../src/domain/grant';
import { ensureReconcileSchedules, reconcileScheduleId } from '../src/schedules';
import type { reconcileWorkflow } from '../src/workflows/reconcile';
import { sessionCutoffSignal, sessionsWorkflowId } from '../src/workflows/messages';
import { CUTOFF_SID_PREFIX, fitInlinePolicy, INLINE_POLICY_MAX_CHARS, parseInlinePolicy, renderInlinePolicy, sessionSecondsOf, withCutoffs } from '../src/domain/sessions';
import { grantEvents } from './support/audit';
import { assignmentsOf, call, current, ensure, eventually, freshAccount as mainAccount, grantReaching, OTHER_TENANT, permissionSetArnOf, recordHistory, recordRun, SESSIONS_ACCOUNTS, SESSIONS_TENANT, target, userIdOf } from './support/world';

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
async function afterReconciliation(tenantId: string, check: (report: Awaited<ReturnType<typeof reconcileWorkflow>>) => Promise<void>): Promise<void> {
  const { stack, temporal } = current();
  const config = loadConfig(stack.configPath);
  await ensureReconcileSchedules(temporal, { ...config, tenants: config.tenants.filter((t) => t.id === tenantId) });
  const schedule = temporal.schedule.getHandle(reconcileScheduleId(tenantId));
  try {
    await schedule.trigger();
    const report = await eventually('a reconciliation round of the tenant', async () => {
      const [latest] = (await schedule.describe()).info.recentActions;
      return latest && temporal.workflow.getHandle<typeof reconcileWorkflow>(latest.action.workflow.workflowId, latest.action.workflow.firstExecutionRunId).result();
    }, 60_000);
    await check(report);
  } finally {
    await schedule.delete();
  }
}

/** Our statement for this user in this account, if there is one. */
function cutoffOf(statements: Statement[], userId: string, account: string): Statement | undefined {
  return statements.find((s) => {
    const users = s.Condition?.StringEquals?.['identitystore:userId'];
    return s.Sid?.startsWith(CUTOFF_SID_PREFIX) && (users === userId || (Array.isArray(users) && users.includes(userId))) && s.Condition.StringEquals['aws:PrincipalAccount'] === account;
  });
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
    assert.ok(Date.parse(cutoff) >= asked && Date.parse(cutoff) <= Date.now(), cutoff);
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
    const provisioned = (await current().sessionsAws.stats()).assignmentCalls.filter((c) => c.op === 'ProvisionPermissionSet' && c.account === account);
    assert.equal(provisioned.length, 2, 'once with the statement, once without it');
    const sessions = sessionsWorkflowId(created.PermissionSet!.PermissionSetArn!);
    await eventually('the sessions workflow to complete', async () => ((await current().temporal.workflow.getHandle(sessions).describe()).status.name === 'COMPLETED' ? true : undefined));
    await recordRun('sessions-cutoff-prune', `WorkflowId = '${sessions}'`);
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
    const ends = 2100; // past the 2,000 events after which a run goes on in a new one
    const base = Date.now() - 600_000;
    const atOf = (i: number) => new Date(base + i * 10).toISOString();
    // Handed in as a reconciliation's removals are (no grant to tell), 100 at a time.
    for (let from = 0; from < ends; from += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, ends - from) }, (_, k) =>
          temporal.workflow.signalWithStart('sessionsWorkflow', {
            workflowId,
            taskQueue: env.taskQueue,
            args: [{ permissionSetArn, tenantId: SESSIONS_TENANT.id }],
            signal: sessionCutoffSignal,
            signalArgs: [{ tenantId: SESSIONS_TENANT.id, userId: users[(from + k) % users.length], accountId: account, at: atOf(from + k) }],
          }),
        ),
      );
    }
    // Each user's latest cut-off: the last of their ends.
    const latest = users.map((_, u) => atOf(ends - users.length + u));
    await eventually(
      'every user to have their latest cut-off',
      async () => {
        const statements = await inlinePolicy(role);
        return users.every((u, j) => cutoffOf(statements, u, account)?.Condition.DateLessThan['aws:TokenIssueTime'] === latest[j]) ? statements : undefined;
      },
      240_000,
    );
    const runs = await temporal.workflow.count(`WorkflowId = '${workflowId}' AND ExecutionStatus = 'ContinuedAsNew'`);
    assert.ok(runs.count >= 1, 'the flood went on in a new run');
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
  const at = (minute: number) => new Date(Date.UTC(2026, 11, 4, 12, minute)).toISOString();

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

  it('over the size limit, merges each account to one statement with its earliest cut-off, never across accounts', () => {
    const cutoffs = Array.from({ length: 300 }, (_, i) => ({ userId: `9067${String(i).padStart(6, '0')}-aaaa-bbbb-cccc-dddddddddddd`, accountId: i % 2 ? '111111111111' : '222222222222', at: at(i % 50) }));
    const { kept } = withCutoffs([], cutoffs, new Date(at(55)), 3600);
    const policy = { version: '2012-10-17', others: [customer], ours: kept };
    assert.ok(renderInlinePolicy(policy).length > INLINE_POLICY_MAX_CHARS, 'the test starts over the limit');
    const fitted = fitInlinePolicy(policy)!;
    assert.ok(renderInlinePolicy(fitted).length <= INLINE_POLICY_MAX_CHARS);
    assert.deepEqual(fitted.others, [customer]);
    assert.equal(fitted.ours.length, 2, 'one statement per account');
    for (const c of cutoffs) {
      const s = fitted.ours.find((o) => o.accountId === c.accountId)!;
      assert.ok(s.userIds.includes(c.userId), 'every user is still denied in their account');
      assert.ok(s.at <= c.at, 'never a session issued after the user own cut-off');
    }
    const hopeless = { ...policy, others: [{ Sid: 'Big', Effect: 'Allow', Action: 'x'.repeat(INLINE_POLICY_MAX_CHARS), Resource: '*' }] };
    assert.equal(fitInlinePolicy(hopeless), undefined);
  });

  it('reads session durations as AWS writes them', () => {
    assert.deepEqual(['PT1H', 'PT12H', 'PT30M', 'PT1H30M', 'PT10S', undefined, 'P1D'].map(sessionSecondsOf), [3600, 43200, 1800, 5400, 10, 3600, 3600]);
  });
});
