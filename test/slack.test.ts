// Approve and deny from Slack: the review_requested message's buttons, and Slack's signed
// interaction requests, against a fake Slack (test/support/slack.ts) on the real stack.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { startApiWithPolicies } from './support/policy-api';
import type { Received } from './support/webhooks';
import {
  call,
  current,
  eventually,
  freshAccount,
  OTHER_TENANT,
  SIGNING_SECRETS,
  SLACK_TENANT,
  SLACK_TWO_APPROVALS_ACCOUNT,
  SLACK_USERS,
  target,
  tokenFor,
} from './support/world';

const INTERACTIONS = '/v1/integrations/slack/interactions';
type SlackUser = keyof typeof SLACK_USERS;
let clicks = 0;

/** Alice asks SLACK_TENANT for AdministratorAccess (a review); answers the pending grant and the message reviewers got. */
async function requestReview(account = freshAccount(), as: 'alice' | 'erin' | 'fred' = 'alice') {
  const token = await tokenFor(as, SLACK_TENANT.id);
  const reply = await call('POST', '/v1/access/ensure', {
    token,
    tenant: SLACK_TENANT.id,
    body: { entitlements: [{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], justification: { reason: 'slack test' } },
  });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const grant = reply.body.grants[0];
  assert.equal(grant.status, 'pending', JSON.stringify(reply.body));
  const message = await eventually<Received>('the review_requested message', async () =>
    current().webhooks.received.find((r) => r.path === '/slack/reviewers' && r.body.text.includes(grant.access_request_id)),
  );
  return { grant, requestId: grant.access_request_id as string, message };
}

/** The buttons of a message, by action_id. */
function buttonsOf(message: Received): Record<string, any> {
  const actions = (message.body.blocks as any[]).filter((b) => b.type === 'actions').flatMap((b) => b.elements);
  return Object.fromEntries(actions.map((e: any) => [e.action_id, e]));
}

/** What Slack POSTs when `user` clicks `action` of `message`: a fresh response_url each time. */
function clickOf(user: SlackUser, action: 'approve' | 'deny', value: string, message?: Received) {
  clicks += 1;
  const name = `click-${clicks}`;
  const payload = {
    type: 'block_actions',
    team: { id: 'T0TEST', domain: 'example' },
    user: { id: SLACK_USERS[user], username: user, team_id: 'T0TEST' },
    api_app_id: 'A0TEST',
    container: { type: 'message', message_ts: '1700000000.000100', channel_id: 'C0REVIEW' },
    channel: { id: 'C0REVIEW', name: 'reviewers' },
    message: message ? { type: 'message', ts: '1700000000.000100', text: message.body.text, blocks: message.body.blocks } : undefined,
    response_url: current().slack.responseUrl(name),
    actions: [{ type: 'button', action_id: action, block_id: 'review', value, action_ts: '1700000001.000200' }],
  };
  return { name, body: `payload=${encodeURIComponent(JSON.stringify(payload))}` };
}

function sign(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

async function post(body: string, headers: Record<string, string>, baseUrl = current().baseUrl) {
  const res = await fetch(baseUrl + INTERACTIONS, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The headers Slack sends with a click: signed now with `secret` (SLACK_TENANT's by default). */
function signed(body: string, { secret = SIGNING_SECRETS[SLACK_TENANT.id], ageSeconds = 0 } = {}) {
  const timestamp = Math.floor(Date.now() / 1000) - ageSeconds;
  return { 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': sign(secret, timestamp, body) };
}

/** Sends the click as Slack would (see `signed`), to the shared API or `baseUrl`. */
function send(body: string, opts: Parameters<typeof signed>[1] & { baseUrl?: string } = {}) {
  return post(body, signed(body, opts), opts.baseUrl);
}

/** What the service said back to the click's response_url. */
function responseTo(name: string) {
  return eventually(`a post to response_url ${name}`, async () => current().slack.responses.find((r) => r.name === name));
}

async function requestAsAlice(requestId: string) {
  const reply = await call('GET', `/v1/access/requests/${requestId}`, { token: await tokenFor('alice', SLACK_TENANT.id), tenant: SLACK_TENANT.id });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body;
}

/** A refused click: 401 in the contract's shape, and neither the request nor response_url hears of it. */
async function assertRefused(reply: { status: number; body: any }, requestId: string, clickName: string) {
  assert.equal(reply.status, 401, JSON.stringify(reply.body));
  assert.equal(reply.body.code, 'unauthenticated');
  assert.equal(typeof reply.body.message, 'string');
  assert.deepEqual(Object.keys(reply.body).sort(), ['code', 'message']);
  const request = await requestAsAlice(requestId);
  assert.equal(request.status, 'pending');
  assert.deepEqual(request.approvals, []);
  assert.equal(current().slack.responses.filter((r) => r.name === clickName).length, 0, 'nothing is said to response_url');
}

describe('approve and deny from Slack', function () {
  this.timeout(120_000);

  it('puts Approve and Deny buttons, naming the tenant and the request, on review_requested messages', async () => {
    const { requestId, message } = await requestReview();
    const { approve, deny } = buttonsOf(message);
    assert.equal(approve.type, 'button');
    assert.equal(approve.style, 'primary');
    assert.equal(deny.style, 'danger');
    for (const button of [approve, deny]) {
      assert.ok(button.value.includes(requestId), button.value);
      assert.ok(button.value.includes(SLACK_TENANT.id), button.value);
    }
    assert.equal(message.body.blocks![0] && (message.body.blocks![0] as any).text.text, message.body.text, 'the text block is as before');
  });

  it('a signed Approve by a reviewer approves the request, and the message says so', async () => {
    const { grant, requestId, message } = await requestReview();
    const click = clickOf('carol', 'approve', buttonsOf(message).approve.value, message);
    const reply = await send(click.body);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));

    const outcome = await responseTo(click.name);
    assert.equal(outcome.body.replace_original, true);
    assert.match(outcome.body.text!, /Approved by carol/);
    assert.ok(!(outcome.body.blocks ?? []).some((b: any) => b.type === 'actions'), 'a decided request has no buttons');
    const request = await requestAsAlice(requestId);
    assert.equal(request.status, 'approved');
    assert.deepEqual(request.approvals.map((a: any) => a.reviewer_id), ['carol']);
    const token = await tokenFor('alice', SLACK_TENANT.id);
    await eventually('the grant to be active', async () => {
      const reply = await call('GET', `/v1/access/grants/${grant.id}`, { token, tenant: SLACK_TENANT.id });
      return reply.body.status === 'active' ? reply.body : undefined;
    }, 60_000);
  });

  it('a Deny by a reviewer denies the request', async () => {
    const { requestId, message } = await requestReview();
    const click = clickOf('dave', 'deny', buttonsOf(message).deny.value, message);
    assert.equal((await send(click.body)).status, 200);
    assert.match((await responseTo(click.name)).body.text!, /Denied by dave/);
    assert.equal((await requestAsAlice(requestId)).status, 'denied');
  });

  it('looks a Slack user up once and remembers them', async () => {
    const { message } = await requestReview();
    const value = buttonsOf(message).approve.value;
    const before = current().slack.lookups.get(SLACK_USERS.dave) ?? 0;
    for (let i = 0; i < 2; i++) {
      const click = clickOf('dave', 'approve', value, message);
      assert.equal((await send(click.body)).status, 200);
      assert.match((await responseTo(click.name)).body.text!, /Approved by dave/, 'the repeated click is answered with the same outcome');
    }
    assert.ok((current().slack.lookups.get(SLACK_USERS.dave) ?? 0) <= before + 1, 'users.info was asked at most once');
  });

  it('refuses (401, nothing changed) a bad or missing signature and a stale timestamp', async () => {
    const { requestId, message } = await requestReview();
    const value = buttonsOf(message).approve.value;
    const now = Math.floor(Date.now() / 1000);

    const forged = clickOf('carol', 'approve', value, message);
    await assertRefused(await send(forged.body, { secret: 'not-the-secret' }), requestId, forged.name);
    const unsigned = clickOf('carol', 'approve', value, message);
    await assertRefused(await post(unsigned.body, {}), requestId, unsigned.name);
    const garbled = clickOf('carol', 'approve', value, message);
    await assertRefused(await post(garbled.body, { 'x-slack-request-timestamp': String(now), 'x-slack-signature': 'v0=abc' }), requestId, garbled.name);
    // Signed over another body: the signature covers every byte.
    const tampered = clickOf('carol', 'approve', value, message);
    const signature = sign(SIGNING_SECRETS[SLACK_TENANT.id], now, tampered.body);
    await assertRefused(await post(`${tampered.body}&x=1`, { 'x-slack-request-timestamp': String(now), 'x-slack-signature': signature }), requestId, tampered.name);
    const stale = clickOf('carol', 'approve', value, message);
    await assertRefused(await send(stale.body, { ageSeconds: 6 * 60 }), requestId, stale.name);
    const future = clickOf('carol', 'approve', value, message);
    await assertRefused(await send(future.body, { ageSeconds: -6 * 60 }), requestId, future.name);
  });

  it('refuses (401) a click sent again with the same signature: a replay within the timestamp window changes nothing', async () => {
    const { requestId, message } = await requestReview();
    const click = clickOf('dave', 'deny', buttonsOf(message).deny.value, message);
    const headers = signed(click.body);
    assert.equal((await post(click.body, headers)).status, 200);
    assert.match((await responseTo(click.name)).body.text!, /Denied by dave/);
    const replayed = await post(click.body, headers);
    assert.equal(replayed.status, 401, JSON.stringify(replayed.body));
    assert.equal(replayed.body.code, 'unauthenticated');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(current().slack.responses.filter((r) => r.name === click.name).length, 1, 'the replay is not acted on');
    assert.equal((await requestAsAlice(requestId)).status, 'denied');
  });

  it('limits clicks per Slack user at the tenant write rate, under a tenant-wide ceiling', async () => {
    // An API of the test's own, where the Slack tenant allows 2 clicks at once per Slack user and 5 in all.
    const api = await startApiWithPolicies(undefined, (config) => {
      const tenant = config.tenants.find((t) => t.id === SLACK_TENANT.id)!;
      Object.assign(tenant.grants, { ensure_rate_per_minute: 1, ensure_burst: 2 });
      Object.assign(tenant.notifications.slack!, { clicks_per_minute: 1, clicks_burst: 5 });
    });
    try {
      // Clicks on a request id nobody has: each is answered (privately) at its response_url, and none reviews anything.
      const value = `${SLACK_TENANT.id}:${randomUUID()}`;
      const clicks = async (user: SlackUser, n: number) => {
        const statuses: number[] = [];
        for (let i = 0; i < n; i++) statuses.push((await send(clickOf(user, 'approve', value).body, { baseUrl: api.url })).status);
        return statuses;
      };
      assert.deepEqual(await clicks('carol', 3), [200, 200, 429], 'carol past her own bucket');
      assert.deepEqual(await clicks('dave', 2), [200, 200], 'dave is not slowed by carol');
      assert.deepEqual(await clicks('eve', 1), [200], 'the tenant’s fifth click');
      const past = await send(clickOf('erin', 'approve', value).body, { baseUrl: api.url });
      assert.equal(past.status, 429, JSON.stringify(past.body));
      assert.match(past.body.message, /per tenant/, 'erin has clicks of her own left, the tenant has none');
    } finally {
      await api.stop();
    }
  });

  it("refuses (401) a click signed with another tenant's secret", async () => {
    const { requestId, message } = await requestReview();
    const value: string = buttonsOf(message).approve.value;
    // Signed by OTHER_TENANT's Slack app, naming SLACK_TENANT's request.
    const crossed = clickOf('carol', 'approve', value, message);
    await assertRefused(await send(crossed.body, { secret: SIGNING_SECRETS[OTHER_TENANT.id] }), requestId, crossed.name);
    // A genuine SLACK_TENANT body whose value is made to name OTHER_TENANT: checked with that tenant's secret.
    const renamed = clickOf('carol', 'approve', value.replace(SLACK_TENANT.id, OTHER_TENANT.id), message);
    await assertRefused(await send(renamed.body), requestId, renamed.name);
    // A tenant that does not exist.
    const unknown = clickOf('carol', 'approve', value.replace(SLACK_TENANT.id, '00000000-0000-4000-8000-000000000000'), message);
    await assertRefused(await send(unknown.body), requestId, unknown.name);
  });

  it('refuses a requester reviewing their own request, and a Slack user who is not a reviewer', async () => {
    const { requestId, message } = await requestReview();
    const value = buttonsOf(message).approve.value;
    const own = clickOf('alice', 'approve', value, message);
    assert.equal((await send(own.body)).status, 200);
    const ownAnswer = await responseTo(own.name);
    assert.match(ownAnswer.body.text!, /Nobody reviews their own request/);
    assert.equal(ownAnswer.body.response_type, 'ephemeral');
    assert.notEqual(ownAnswer.body.replace_original, true, 'the message stays for the reviewers');

    const stranger = clickOf('eve', 'approve', value, message);
    assert.equal((await send(stranger.body)).status, 200);
    assert.match((await responseTo(stranger.name)).body.text!, /not a reviewer/);

    const request = await requestAsAlice(requestId);
    assert.equal(request.status, 'pending');
    assert.deepEqual(request.approvals, []);
  });

  it('is one person whichever way they come: a reviewer Slack names otherwise neither reviews their own request nor approves twice', async () => {
    // erin's tokens carry sub "erin"; the Slack reviewers map names her "erin-slack".
    const own = await requestReview(freshAccount(), 'erin');
    const ownClick = clickOf('erin', 'approve', buttonsOf(own.message).approve.value, own.message);
    assert.equal((await send(ownClick.body)).status, 200);
    assert.match((await responseTo(ownClick.name)).body.text!, /Nobody reviews their own request/);
    const ownRequest = await call('GET', `/v1/access/requests/${own.requestId}`, { token: await tokenFor('erin', SLACK_TENANT.id), tenant: SLACK_TENANT.id });
    assert.deepEqual([ownRequest.body.status, ownRequest.body.approvals], ['pending', []]);

    const { grant, requestId, message } = await requestReview(SLACK_TWO_APPROVALS_ACCOUNT);
    const byApi = await call('POST', `/v1/access/requests/${requestId}/review`, {
      token: await tokenFor('erin', SLACK_TENANT.id),
      tenant: SLACK_TENANT.id,
      body: { decision: 'approve' },
    });
    assert.equal(byApi.status, 200, JSON.stringify(byApi.body));
    const again = clickOf('erin', 'approve', buttonsOf(message).approve.value, message);
    assert.equal((await send(again.body)).status, 200);
    assert.match((await responseTo(again.name)).body.text!, /already approved/);
    const request = await requestAsAlice(requestId);
    assert.equal(request.status, 'pending');
    assert.deepEqual(request.approvals.map((a: any) => a.reviewer_id), ['erin'], 'one approval of two');
    // Withdrawn, so the next test asks for this account afresh.
    const withdrawn = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { token: await tokenFor('alice', SLACK_TENANT.id), tenant: SLACK_TENANT.id, body: {} });
    assert.equal(withdrawn.status, 200, JSON.stringify(withdrawn.body));
    await eventually('the withdrawn grant to close', async () => ((await requestAsAlice(requestId)).status === 'withdrawn' ? true : undefined));
  });

  it('matches a person by the user claim or the email: a reviewer whose Slack entry names another user neither reviews their own request nor approves twice', async () => {
    // fred's tokens carry email fred@example.com (the tenant's user claim); his Slack entry says user fred.f.
    const own = await requestReview(freshAccount(), 'fred');
    const ownClick = clickOf('fred', 'approve', buttonsOf(own.message).approve.value, own.message);
    assert.equal((await send(ownClick.body)).status, 200);
    assert.match((await responseTo(ownClick.name)).body.text!, /Nobody reviews their own request/);
    const ownRequest = await call('GET', `/v1/access/requests/${own.requestId}`, { token: await tokenFor('fred', SLACK_TENANT.id), tenant: SLACK_TENANT.id });
    assert.deepEqual([ownRequest.body.status, ownRequest.body.approvals], ['pending', []]);

    const { grant, requestId, message } = await requestReview(SLACK_TWO_APPROVALS_ACCOUNT);
    const byApi = await call('POST', `/v1/access/requests/${requestId}/review`, { token: await tokenFor('fred', SLACK_TENANT.id), tenant: SLACK_TENANT.id, body: { decision: 'approve' } });
    assert.equal(byApi.status, 200, JSON.stringify(byApi.body));
    const again = clickOf('fred', 'approve', buttonsOf(message).approve.value, message);
    assert.equal((await send(again.body)).status, 200);
    assert.match((await responseTo(again.name)).body.text!, /already approved/);
    const request = await requestAsAlice(requestId);
    assert.deepEqual([request.status, request.approvals.map((a: any) => a.reviewer_id)], ['pending', ['fred']], 'one approval of two');
    // Withdrawn, so the next test asks for this account afresh.
    const withdrawn = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { token: await tokenFor('alice', SLACK_TENANT.id), tenant: SLACK_TENANT.id, body: {} });
    assert.equal(withdrawn.status, 200, JSON.stringify(withdrawn.body));
    await eventually('the withdrawn grant to close', async () => ((await requestAsAlice(requestId)).status === 'withdrawn' ? true : undefined));
  });

  it('counts a Slack approval towards a request that needs two, and keeps the buttons until the second', async () => {
    const { requestId, message } = await requestReview(SLACK_TWO_APPROVALS_ACCOUNT);
    const value = buttonsOf(message).approve.value;
    const first = clickOf('carol', 'approve', value, message);
    assert.equal((await send(first.body)).status, 200);
    const firstAnswer = await responseTo(first.name);
    assert.match(firstAnswer.body.text!, /Approved by carol \(1 of 2\)/);
    assert.ok((firstAnswer.body.blocks ?? []).some((b: any) => b.type === 'actions'), 'the buttons stay for the second reviewer');
    let request = await requestAsAlice(requestId);
    assert.equal(request.status, 'pending');
    assert.equal(request.approvals_required, 2);
    assert.deepEqual(request.approvals.map((a: any) => a.reviewer_id), ['carol']);

    const second = clickOf('dave', 'approve', value, { ...message, body: firstAnswer.body as Received['body'] });
    assert.equal((await send(second.body)).status, 200);
    assert.match((await responseTo(second.name)).body.text!, /Approved by dave \(2 of 2\)/);
    request = await requestAsAlice(requestId);
    assert.equal(request.status, 'approved');
  });
});
