// The audit store down during a burst of grants (issue 13 §4): the grants activate and expire on
// time all the same, their runs stay open until every event is written, and once the store is
// back every event is there, once.
import assert from 'node:assert/strict';
import { grantWorkflowId, type GrantView } from '../src/domain/grant';
import { grantEvents, storedEvents } from './support/audit';
import { assignmentsOf, call, current, ensure, eventually, FAULTS_TENANT, freshAccount, target } from './support/world';

const GRANTS = 6;
const DURATION_SECONDS = 4;
/** Generous for a noisy 2-core machine; the point is that the outage (much longer) adds nothing. */
const EXPIRY_LAG_BOUND_MS = 20_000;
const LIFECYCLE = ['requested', 'activated', 'expired', 'deprovisioned'];

describe('audit store outage', function () {
  this.timeout(300_000);

  it('delays no expiry, loses no event and duplicates none', async () => {
    const { auditOutage, workerMetrics, temporal } = current();
    const failuresBefore = (await workerMetrics.auditWriteFailures.get()).values[0]?.value ?? 0;
    const accounts = Array.from({ length: GRANTS }, () => freshAccount());
    let grants: GrantView[] = [];
    auditOutage.takeDown();
    try {
      grants = await Promise.all(
        accounts.map(async (account) => {
          const reply = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: DURATION_SECONDS }], { as: 'fay' });
          assert.equal(reply.status, 200, JSON.stringify(reply.body));
          return reply.body.grants[0];
        }),
      );
      // Every grant activates and expires on time, its assignment removed, with the store still down.
      const expired = await Promise.all(
        grants.map((g) =>
          eventually(`grant ${g.id} expired`, async () => {
            const reply = await call<GrantView>('GET', `/v1/access/grants/${g.id}`, { as: 'fay' });
            return reply.body.status === 'expired' ? { grant: reply.body, seenAt: Date.now() } : undefined;
          }, 90_000),
        ),
      );
      for (const { grant, seenAt } of expired) {
        assert.ok(seenAt - Date.parse(grant.expires_at!) < EXPIRY_LAG_BOUND_MS, `${grant.id} expired ${seenAt - Date.parse(grant.expires_at!)} ms late`);
      }
      for (const account of accounts) assert.equal(await assignmentsOf('fay', account, 'ReadOnlyAccess'), 0);
      // No run closes with an event unwritten.
      for (const [i, account] of accounts.entries()) {
        const described = await temporal.workflow
          .getHandle(grantWorkflowId({ tenantId: FAULTS_TENANT.id, principalId: 'fay', target: target(account), role: 'ReadOnlyAccess' }))
          .describe();
        assert.equal(described.status.name, 'RUNNING', `grant ${grants[i].id} waits for its audit events`);
      }
      assert.equal((await storedEvents(FAULTS_TENANT.id)).filter((e) => grants.some((g) => g.id === e.event.grant_id)).length, 0, 'nothing got through');
      const failures = (await workerMetrics.auditWriteFailures.get()).values[0]?.value ?? 0;
      assert.ok(failures > failuresBefore, 'the failed writes are counted');
    } finally {
      auditOutage.bringUp();
    }

    // Back up: every event of every grant, each once (the retries back off to a minute at most),
    // and then the runs close.
    for (const g of grants) {
      const events = await grantEvents(g.id, LIFECYCLE, FAULTS_TENANT.id, 180_000);
      assert.deepEqual(events.map((e) => e.event.event), LIFECYCLE, `grant ${g.id}: each event once`);
    }
    for (const account of accounts) {
      const handle = temporal.workflow.getHandle(grantWorkflowId({ tenantId: FAULTS_TENANT.id, principalId: 'fay', target: target(account), role: 'ReadOnlyAccess' }));
      await eventually(`the run of ${account} to close`, async () => ((await handle.describe()).status.name === 'COMPLETED' ? true : undefined), 60_000);
    }
  });
});
