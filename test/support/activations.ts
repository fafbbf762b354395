// Many activations at once for the faults tenant, and their end state as a user and AWS see it.
import assert from 'node:assert/strict';
import { ListAccountAssignmentsCommand } from '@aws-sdk/client-sso-admin';
import type { GrantView } from '../../src/domain/grant';
import { call, current, ensure, eventually, FAULTS_TENANT, freshAccount, permissionSetArnOf, target } from './world';

const ROLE = 'ReadOnlyAccess';
const PER_ENSURE = 20; // the most entitlements one ensure takes

/** Starts `count` activations at once (ensure calls of 20 entitlements, all in parallel) and waits until all are active. */
export async function activateAtOnce(count: number, timeoutMs: number): Promise<{ accounts: string[]; grants: GrantView[] }> {
  const accounts = Array.from({ length: count }, () => freshAccount());
  const batches: string[][] = [];
  for (let i = 0; i < count; i += PER_ENSURE) batches.push(accounts.slice(i, i + PER_ENSURE));
  // As a client would: a 503 (Temporal too busy to answer in time) is asked again; ensure is
  // idempotent, so a grant started by the first try is answered `none` by the second.
  let askedAgain = 0;
  const ensureBatch = async (batch: string[]) => {
    for (let attempt = 1; ; attempt++) {
      const reply = await ensure(batch.map((a) => ({ target: target(a), role: ROLE, duration_seconds: 3600 })), { as: 'fay' });
      if (reply.status !== 503 || attempt === 5) return reply;
      askedAgain += 1;
      console.log(`      ensure answered 503 (${reply.body.message}); asking again`);
    }
  };
  const replies = await Promise.all(batches.map(ensureBatch));
  // Temporal too busy for a call now and then is what a client retries; for one in ten it is an outage.
  assert.ok(askedAgain <= Math.ceil(batches.length / 10), `${askedAgain} of ${batches.length} ensure calls answered 503 first`);
  const started = replies.flatMap((r) => {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.grants;
  });
  assert.equal(new Set(started.map((g) => g.id)).size, count);
  for (const g of started) assert.ok(g.change === 'activated' || (g.change === 'none' && g.status !== 'pending'), JSON.stringify(g));

  // Visibility first (one cheap count), then every grant as its owner sees it.
  const ids = started.map((g) => `'${g.id}'`).join(', ');
  const query = `AccessTenant = '${FAULTS_TENANT.id}' AND AccessStatus = 'active' AND AccessGrantId IN (${ids})`;
  await eventually(`${count} grants active`, async () => ((await current().temporal.workflow.count(query)).count === count ? true : undefined), timeoutMs);
  const grants = await Promise.all(
    started.map(async (g) => {
      const reply = await call<GrantView>('GET', `/v1/access/grants/${g.id}`, { as: 'fay' });
      assert.equal(reply.body.status, 'active', JSON.stringify(reply.body));
      return reply.body;
    }),
  );
  return { accounts, grants };
}

/** How many assignments of the role each account holds in (emulated) AWS, read past the proxy. */
export async function assignmentCounts(accounts: string[]): Promise<number[]> {
  const { sso, stack } = current();
  const permissionSetArn = await permissionSetArnOf(ROLE, FAULTS_TENANT.id);
  const counts: number[] = [];
  for (const account of accounts) {
    const listed = await sso.send(
      new ListAccountAssignmentsCommand({ InstanceArn: stack.instanceArnOf(FAULTS_TENANT.id), AccountId: account, PermissionSetArn: permissionSetArn }),
    );
    counts.push(listed.AccountAssignments?.length ?? 0);
  }
  return counts;
}
