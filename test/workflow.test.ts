// The grant workflow itself, on the real server: what only many messages can show.
import assert from 'node:assert/strict';
import { grantWorkflowId, type EnsureRequest } from '../src/domain/grant';
import { ensureUpdate } from '../src/workflows/messages';
import { assignmentsOf, call, current, ensure, freshAccount, grantReaching, target, TENANT } from './support/world';

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
    const request: EnsureRequest = {
      durationSeconds: 0,
      autoApprove: true,
      justification: { reason: 'load' },
      validation: { has_reason: true, has_ticket_attachment: false },
      pendingTtlSeconds: 60,
      reviewDiagnostics: [],
    };
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
    const after = await grantReaching(active.id, 'active');
    assert.equal(after.expires_at, expiresAt);
    assert.equal(after.activated_at, active.activated_at);

    const revoked = await call('POST', `/v1/access/grants/${active.id}/revoke`, { body: {} });
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
  });
});
