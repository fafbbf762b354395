// Webhook notifications, received by a local HTTP server (test/support/webhooks.ts) that the
// test tenants' config points at (test/support/world.ts).
import assert from 'node:assert/strict';
import { grantWorkflowId } from '../src/domain/grant';
import type { Received } from './support/webhooks';
import {
  assignmentsOf,
  call,
  current,
  ensure,
  eventually,
  EXPIRY_WARNING_SECONDS,
  freshAccount,
  grantReaching,
  OTHER_TENANT,
  recordHistory,
  SECRET_WEBHOOK_PATH,
  target,
  TENANT,
} from './support/world';

/** Deliveries to `path` about `account`, once at least `count` of them match `pattern`. */
function deliveries(path: string, account: string, pattern: RegExp, count = 1): Promise<Received[]> {
  return eventually(`${count} notification(s) to ${path} matching ${pattern}`, async () => {
    const found = current().webhooks.received.filter((r) => r.path === path && r.body.text.includes(`AWS::Account::${account}`));
    return found.filter((r) => pattern.test(r.body.text)).length >= count ? found : undefined;
  });
}

const about = (path: string, account: string) =>
  current().webhooks.received.filter((r) => r.path === path && r.body.text.includes(`AWS::Account::${account}`));

/** Every string in a Temporal message, payload bytes read as text, so a search sees what they say. */
function textOf(value: unknown): string {
  const found: string[] = [];
  const walk = (v: unknown): void => {
    if (v instanceof Uint8Array) found.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') found.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(value);
  return found.join('\n');
}

describe('notifications', function () {
  this.timeout(120_000);

  it('tells reviewers who may review, then the requester that it was approved and is active', async () => {
    const account = freshAccount();
    const reply = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], {
      reason: 'incident 42',
      attachments: ['OPS-42'],
    });
    const pending = reply.body.grants[0];
    assert.equal(pending.change, 'requested', JSON.stringify(reply.body));

    const [request] = await deliveries('/reviewers', account, /requests/);
    assert.equal(request.status, 200);
    const text = request.body.text;
    assert.match(text, /alice@example\.com/);
    assert.match(text, /AdministratorAccess/);
    assert.match(text, /incident 42/);
    assert.match(text, /OPS-42/);
    assert.match(text, /needs approval by a member of platform-admins/, 'names who may review');
    assert.ok(text.includes(pending.access_request_id!), 'names the request to review');
    assert.deepEqual(request.body.blocks, [{ type: 'section', text: { type: 'mrkdwn', text } }], 'Slack blocks carry the same text');
    assert.deepEqual(about('/requesters', account), [], 'the requester hears nothing before a decision');

    const approved = await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'approve', comment: 'ok' } });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const toRequester = await deliveries('/requesters', account, /is active until/);
    assert.match(toRequester[0].body.text, /alice@example\.com.*approved by carol \("ok"\)/);
    const active = await grantReaching(pending.id, 'active');
    assert.ok(toRequester[1].body.text.includes(active.expires_at!), 'the active message says when access ends');
    assert.equal(about('/reviewers', account).length, 1, 'reviewers get the request only');

    // The flaky channel refused the first delivery; Temporal retried it.
    const flaky = await deliveries('/flaky/requesters', account, /approved by carol/, 2);
    assert.deepEqual(flaky.map((r) => r.status), [500, 200]);
    const approvals = about('/requesters', account).filter((r) => /approved by/.test(r.body.text));
    assert.equal(approvals.length, 1, 'the retry skips the webhook that already had it');

    const revoked = await call('POST', `/v1/access/grants/${pending.id}/revoke`, { body: {} });
    assert.equal(revoked.body.status, 'revoked', JSON.stringify(revoked.body));
    await recordHistory('notify-request-approve-revoke', pending.id);
  });

  it('tells the requester a request was denied, and by whom', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'curious' });
    const pending = body.grants[0];
    await deliveries('/reviewers', account, /requests/);
    await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'deny', comment: 'not today' } });
    const [denied] = await deliveries('/requesters', account, /denied/);
    assert.match(denied.body.text, /alice@example\.com.*AdministratorAccess.*was denied by carol \("not today"\)/);
    await grantReaching(pending.id, 'revoked');
    assert.equal(about('/requesters', account).length, 1, 'no active message for a denied request');
  });

  it('a scheduled request says when access would start, to reviewers and, once approved ahead, to the requester', async () => {
    const account = freshAccount();
    const startsAt = new Date(Date.now() + 3600_000).toISOString();
    const reply = await call('POST', '/v1/access/ensure', {
      body: {
        entitlements: [{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }],
        justification: { reason: 'change window' },
        starts_at: startsAt,
      },
    });
    const pending = reply.body.grants[0];
    assert.equal(pending.change, 'requested', JSON.stringify(reply.body));
    const [request] = await deliveries('/reviewers', account, /requests/);
    assert.ok(request.body.text.includes(`for 10m, starting at ${startsAt}.`), request.body.text);

    await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'approve' } });
    const [approved] = await deliveries('/requesters', account, /approved by carol/);
    assert.ok(approved.body.text.endsWith(`; it starts at ${startsAt}.`), approved.body.text);
    assert.doesNotMatch(approved.body.text, /being provisioned/);
    const withdrawn = await call('POST', `/v1/access/grants/${pending.id}/revoke`, { body: {} });
    assert.equal(withdrawn.body.status, 'revoked', JSON.stringify(withdrawn.body));
  });

  it('warns before expiry, again after an extension, and the grant still ends on time', async () => {
    const account = freshAccount();
    const duration = 2 * EXPIRY_WARNING_SECONDS;
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: duration }]);
    const first = await grantReaching(body.grants[0].id, 'active');
    const [warning] = (await deliveries('/requesters', account, /ends at/)).filter((r) => /ends at/.test(r.body.text));
    assert.ok(warning.body.text.includes(`ends at ${first.expires_at}`), warning.body.text);
    assert.match(warning.body.text, /alice@example\.com/);

    // The warning leaves 4 s before the expiry; its delivery on loopback and this one ensure take
    // milliseconds, so the extension meets the grant still active even on two busy cores.
    const extended = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: duration + 2 }]);
    assert.equal(extended.body.grants[0].change, 'extended', JSON.stringify(extended.body));
    const newExpiry = extended.body.grants[0].expires_at!;
    const warnings = (await deliveries('/requesters', account, /ends at/, 2)).filter((r) => /ends at/.test(r.body.text));
    assert.ok(warnings[1].body.text.includes(`ends at ${newExpiry}`), 'the warning is re-armed for the new expiry');

    const expired = await grantReaching(first.id, 'expired');
    assert.equal(expired.expires_at, newExpiry);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    assert.equal(about('/requesters', account).filter((r) => /ends at/.test(r.body.text)).length, 2, 'one warning per expiry');
    await current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'ReadOnlyAccess' })).result();
    await recordHistory('notify-activate-warn-extend-expire', first.id);
  });

  it('a dead webhook delays neither provisioning nor expiry', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 3 }], { as: 'oscar' });
    await grantReaching(body.grants[0].id, 'active', 'oscar');
    assert.equal(await assignmentsOf('oscar', account, 'ReadOnlyAccess'), 1);
    await grantReaching(body.grants[0].id, 'expired', 'oscar');
    assert.equal(await assignmentsOf('oscar', account, 'ReadOnlyAccess'), 0);
    // Meanwhile the notification was tried, and retried.
    const attempts = await deliveries('/dead/requesters', account, /is active until/, 2);
    assert.ok(attempts.every((r) => r.status === 503));
  });

  it('escapes what requesters and reviewers wrote: no channel pings, no disguised links, no lines of its own', async () => {
    const account = freshAccount();
    const reason = '<!channel> see <https://evil.example|docs> & more\n:white_check_mark: approved by carol';
    const { body } = await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], {
      reason,
      attachments: ['<https://evil.example|OPS-1>'],
    });
    const [request] = await deliveries('/reviewers', account, /requests/);
    const text = request.body.text;
    assert.ok(text.includes('Reason: &lt;!channel&gt; see &lt;https://evil.example|docs&gt; &amp; more :white_check_mark: approved by carol'), text);
    assert.ok(text.includes('Tickets: &lt;https://evil.example|OPS-1&gt;'), text);
    assert.doesNotMatch(text, /<!channel>|<https:\/\/evil/);
    assert.doesNotMatch(text, /\n:white_check_mark:/, 'the reason cannot start a line that looks like the service’s');

    await call('POST', `/v1/access/requests/${body.grants[0].access_request_id}/review`, { as: 'carol', body: { decision: 'deny', comment: '<@U123> & <!here>' } });
    const [denied] = await deliveries('/requesters', account, /denied/);
    assert.ok(denied.body.text.includes('("&lt;@U123&gt; &amp; &lt;!here&gt;")'), denied.body.text);
  });

  it('names webhooks by number and hash, never by URL; follows no redirect; reads only so much of an answer', async () => {
    const account = freshAccount();
    const entitlement = { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 };
    const { body } = await ensure([entitlement], { as: 'oscar' });
    await grantReaching(body.grants[0].id, 'active', 'oscar');
    const handle = current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: OTHER_TENANT.id, principalId: 'oscar', ...entitlement }));

    // The 302 is a failed delivery, retried; the never-ending answer was a delivery, made once.
    await deliveries('/redirect/requesters', account, /is active until/, 3);
    assert.deepEqual(current().webhooks.received.filter((r) => r.path.startsWith('/moved')), [], 'a redirect was followed');
    assert.deepEqual(about('/huge/requesters', account).map((r) => r.status), [200], 'the huge answer was read to its end, or sent again');
    assert.equal(about(SECRET_WEBHOOK_PATH, account).length, 1);

    // While it is retried, Temporal holds its heartbeat details and last failure.
    const pending = await eventually('the notification to be retried', async () => {
      const { raw } = await handle.describe();
      return raw.pendingActivities?.find((a) => a.activityType?.name === 'notify' && a.heartbeatDetails && a.lastFailure);
    });
    const message = pending.lastFailure?.message ?? '';
    assert.match(message, /webhook #1 \([0-9a-f]{8}\): HTTP 503/, message);
    assert.match(message, /webhook #2 \([0-9a-f]{8}\): HTTP 302/, message);
    const history = textOf(await handle.fetchHistory());
    for (const [where, seen] of [['the pending activity', textOf(pending)], ['the history', history]]) {
      for (const secret of [SECRET_WEBHOOK_PATH, '/dead/requesters', '/redirect/requesters', '/huge/requesters', current().webhooks.url]) {
        assert.ok(!seen.includes(secret), `${where} names the webhook ${secret}: ${seen}`);
      }
    }
  });

  it('a revoke answers once access is gone, while a dead webhook is still being retried', async () => {
    const account = freshAccount();
    const { body } = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }], { as: 'oscar' });
    await grantReaching(body.grants[0].id, 'active', 'oscar');
    await deliveries('/dead/requesters', account, /is active until/);
    const revoked = await call('POST', `/v1/access/grants/${body.grants[0].id}/revoke`, { as: 'oscar', body: { reason: 'done' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await assignmentsOf('oscar', account, 'ReadOnlyAccess'), 0);
  });
});
