// Many accounts: one ensure for an organisation's accounts (issue 39 §2).
import { CreateAccountAssignmentCommand, DescribeAccountAssignmentCreationStatusCommand } from '@aws-sdk/client-sso-admin';
import { pacer, semaphore } from '../../src/activities/aws';
import { loadConfig } from '../../src/config';
import type { GrantView } from '../../src/domain/grant';
import { assignedAccounts, type Bench } from '../world';
import { REQUESTER, ROLE, settings, sleep } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { round } from '../stats';

export const scenario: Scenario = {
  name: 'many-accounts',
  key: 'manyAccounts',
  title: 'many accounts',
  run,
  rows: (manyAccounts: any, s) => {
    const m = manyAccounts;
    const what = `one ensure of ${m.accounts} accounts × 1 role`;
    return [
      [`${what}: the answer (${m.activated} activated)`, `${m.answerMs} ms`, '', '', 'before every assignment (not waiting for AWS)', yes(m.answerMs < 1000 * m.everyAssignmentSeconds)],
      [`${what}: the answer when every grant is reviewed (one access request, nothing provisioning)`, `${m.requestedAnswerMs} ms`, '', '', '', ''],
      [
        `${what}: until every assignment exists`,
        `${m.everyAssignmentSeconds} s`,
        `${m.floorSeconds} s (the same assignments' ${m.floorCalls} calls alone, ${m.callsPerSecond}/s, ${m.operationsInFlight} in flight)`,
        x(m.everyAssignmentSeconds, m.floorSeconds),
        '',
        '',
      ],
    ];
  },
};

async function run(b: Bench) {
  const { api, tenants, ssoOf, stack, configPath } = b;
  const t = tenants[0];
  const sso = ssoOf[0];
  const n = settings.manyAccounts;
  const { calls_per_second: perSecond, assignment_operations_in_flight: inFlight } = loadConfig(configPath).tenants.find((c) => c.id === t.id)!.aws.limits;
  // 12 digits of their own (every one-digit prefix of account() is some scenario's).
  const accounts = Array.from({ length: n }, (_, i) => String(880_000_000_000 + i));
  const ensureOf = (token: string, role: string, on: string[]) =>
    fetch(`${api}/v1/access/ensure`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-tenant-id': t.id },
      body: JSON.stringify({ entitlements: on.map((a) => ({ target: `AWS::Account::${a}`, role, duration_seconds: 3600 })), justification: { reason: 'bench' } }),
    });
  // First what starting the grants alone costs: as many reviewed grants (one access request, nothing provisioned).
  const requestedStarted = performance.now();
  const requested = await ensureOf(await stack.issueToken(t.id, REQUESTER, { expiresIn: '4h' }), 'AdministratorAccess', accounts.map((_, i) => String(882_000_000_000 + i)));
  const requestedMs = performance.now() - requestedStarted;
  const requestedBody = (await requested.json()) as { grants: GrantView[] };
  if (!requested.ok || requestedBody.grants.some((g) => g.change !== 'requested')) throw new Error(`many accounts, requested: HTTP ${requested.status} ${JSON.stringify(requestedBody).slice(0, 500)}`);
  const started = performance.now();
  const res = await ensureOf(t.token, ROLE, accounts);
  const body = (await res.json()) as { grants: GrantView[] };
  const answerMs = performance.now() - started;
  if (!res.ok || body.grants.length !== n) throw new Error(`many accounts: HTTP ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
  const activated = body.grants.filter((g) => g.change === 'activated').length;
  // Every assignment, as AWS lists them (listed straight from moto, not through the tenant's pacer).
  let everyMs = 0;
  for (;;) {
    const held = await assignedAccounts(sso, t);
    if (accounts.every((a) => held.has(a))) {
      everyMs = performance.now() - started;
      break;
    }
    if (performance.now() - started > 15 * 60_000) throw new Error(`many accounts: ${accounts.filter((a) => !held.has(a)).length} assignments still missing after 15 min`);
    await sleep(250);
  }

  // The floor: the same assignments' calls alone (CreateAccountAssignment, then its status until
  // it succeeded), at the tenant's pace and operations in flight, with the worker's own pacer.
  const pace = pacer(perSecond);
  const operation = semaphore(inFlight);
  let floorCalls = 0;
  const call = async <T>(send: () => Promise<T>) => (await pace(), floorCalls++, send());
  const floorStarted = performance.now();
  await Promise.all(
    accounts.map((_, i) =>
      operation(async () => {
        const created = await call(() =>
          sso.send(new CreateAccountAssignmentCommand({ InstanceArn: t.instanceArn, TargetId: String(881_000_000_000 + i), TargetType: 'AWS_ACCOUNT', PermissionSetArn: t.permissionSetArn, PrincipalType: 'USER', PrincipalId: t.userId })),
        );
        for (let status = created.AccountAssignmentCreationStatus; status?.Status !== 'SUCCEEDED'; ) {
          if (status?.Status === 'FAILED') throw new Error(`floor assignment failed: ${status.FailureReason}`);
          status = (await call(() => sso.send(new DescribeAccountAssignmentCreationStatusCommand({ InstanceArn: t.instanceArn, AccountAssignmentCreationRequestId: created.AccountAssignmentCreationStatus?.RequestId })))).AccountAssignmentCreationStatus;
        }
      }),
    ),
  );
  const floorMs = performance.now() - floorStarted;
  return { accounts: n, activated, answerMs: round(answerMs), requestedAnswerMs: round(requestedMs), everyAssignmentSeconds: round(everyMs / 1000, 1), floorSeconds: round(floorMs / 1000, 1), floorCalls, callsPerSecond: perSecond, operationsInFlight: inFlight };
}
