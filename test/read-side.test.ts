// The read side (issue 20): every read is answered from Temporal visibility (search attributes and
// the run's memo), never by a workflow query; an unknown id is answered at once; a request is found
// by any of its ids. Through HTTP on the real stack.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { VISIBILITY_WAIT_MS } from '../src/service/runs';
import { v7 as uuidv7 } from 'uuid';
import { assertErrorShape, call, current, ensure, eventually, freshAccount, grantReaching, QUOTA_TENANT, QUOTA_ACCOUNTS, target } from './support/world';

/** The API's count of workflow queries it sent, by query name (GET /metrics). */
async function queriesSent(): Promise<number> {
  const text = await (await fetch(`${current().baseUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('access_workflow_queries_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

describe('the read side', function () {
  this.timeout(120_000);

  it('answers every read, and decides every review and revoke, without a workflow query', async () => {
    const account = freshAccount();
    const asked = await ensure(
      [
        { target: target(account), role: 'AdministratorAccess', duration_seconds: 600 },
        { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 },
      ],
      { reason: 'read side' },
    );
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const [admin, readOnly] = asked.body.grants;
    assert.equal(admin.change, 'requested');
    const requestId = admin.access_request_id!;
    await grantReaching(readOnly.id, 'active');
    // Listed in visibility before the count starts: what follows is reads alone.
    await eventually('the request in carol’s queue', async () => {
      const queue = await call('GET', '/v1/access/requests?status=pending&limit=100', { as: 'carol' });
      return queue.body.requests?.some((r: { id: string }) => r.id === requestId) ? true : undefined;
    });

    const before = await queriesSent();
    const reads = [
      ['alice', '/v1/access/grants'],
      ['alice', `/v1/access/grants?status=active&target=${encodeURIComponent(target(account))}`],
      ['alice', `/v1/access/grants/${admin.id}`],
      ['carol', `/v1/access/grants/${admin.id}`],
      ['alice', '/v1/access/requests?mine=true'],
      ['carol', '/v1/access/requests'],
      ['carol', '/v1/access/requests?status=pending&limit=1'],
      ['alice', `/v1/access/requests/${requestId}`],
      ['carol', `/v1/access/requests/${requestId}`],
    ] as const;
    for (const [as, path] of reads) {
      const reply = await call('GET', path, { as });
      assert.equal(reply.status, 200, `${as} GET ${path}: ${JSON.stringify(reply.body)}`);
    }
    const approved = await call('POST', `/v1/access/requests/${requestId}/review`, { as: 'carol', body: { decision: 'approve' } });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    const revoked = await call('POST', `/v1/access/grants/${readOnly.id}/revoke`, { body: { reason: 'done' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.status, 'revoked');
    assert.equal(await queriesSent(), before, 'no workflow query was sent');

    // The views are the grants' own: what the ensure path (which does query) answers agrees.
    const got = await call('GET', `/v1/access/grants/${admin.id}`);
    assert.equal(got.body.id, admin.id);
    assert.equal(got.body.access_request_id, requestId);
    assert.ok(['provisioning', 'active'].includes(got.body.status), got.body.status);
  });

  it('answers an id nobody made with 404 at once, and finds one made a moment ago', async () => {
    // Well-formed ids of no grant or request (UUIDv4, like any id not made here): no wait for
    // visibility. The old read side waited VISIBILITY_WAIT_MS on each; five of them together must
    // take less than one such wait, a margin no busy machine crosses.
    const started = Date.now();
    for (const path of ['requests', 'grants', 'requests', 'grants', 'requests']) {
      const reply = await call('GET', `/v1/access/${path}/${randomUUID()}`);
      assert.equal(reply.status, 404, JSON.stringify(reply.body));
      assert.equal(reply.body.code, 'not_found');
    }
    assert.ok(Date.now() - started < VISIBILITY_WAIT_MS, `five unknown ids took ${Date.now() - started} ms`);

    // Made a moment ago: read back at once, before visibility may list it.
    const reply = await ensure([{ target: target(freshAccount()), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'just now' });
    const grant = reply.body.grants[0];
    const [byRequest, byGrant] = await Promise.all([
      call('GET', `/v1/access/requests/${grant.access_request_id}`, { as: 'carol' }),
      call('GET', `/v1/access/grants/${grant.id}`),
    ]);
    assert.equal(byRequest.status, 200, JSON.stringify(byRequest.body));
    assert.equal(byRequest.body.status, 'pending');
    assert.equal(byGrant.status, 200, JSON.stringify(byGrant.body));
  });

  it('refuses with 400 a cursor whose inner page token, skip or filters were altered (a cursor is signed)', async () => {
    const account = freshAccount();
    const asked = await ensure(
      [
        { target: target(account), role: 'AdministratorAccess', duration_seconds: 600 },
        { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 },
      ],
      { reason: 'cursors' },
    );
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const listing = `/v1/access/grants?target=${encodeURIComponent(target(account))}&limit=1`;
    const cursor = await eventually('a first page with a next_cursor', async () => (await call('GET', listing)).body.next_cursor ?? undefined);
    const next = await call('GET', `${listing}&cursor=${encodeURIComponent(cursor)}`);
    assert.equal(next.status, 200, 'the cursor as given works');

    // As a curious user would: the cursor is base64url JSON (then, now, a signature after a dot);
    // change one character of what is inside, and send it back.
    const [payload, ...signed] = cursor.split('.');
    const inside = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const changed = (field: string, value: unknown) =>
      [Buffer.from(JSON.stringify({ ...inside, [field]: value })).toString('base64url'), ...signed].join('.');
    const token: string = inside.t;
    const at = Math.floor(token.length / 2);
    const flipped = token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
    const altered = [changed('t', flipped), changed('s', 1), changed('q', 'x'.repeat(22)), cursor.slice(0, -1) + (cursor.endsWith('A') ? 'B' : 'A')];
    for (const bad of altered) {
      const reply = await call('GET', `${listing}&cursor=${encodeURIComponent(bad)}`);
      assert.equal(reply.status, 400, `${bad}: ${JSON.stringify(reply.body)}`);
      assertErrorShape(reply, 'invalid_request');
    }
  });

  it('looks again for an unknown id only if this API process gave it out a moment ago, and each look is a read', async () => {
    // A UUIDv7 made now by anyone: nothing this API gave out, so one look and 404.
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      const reply = await call('GET', `/v1/access/grants/${uuidv7()}`);
      assert.equal(reply.status, 404, JSON.stringify(reply.body));
    }
    assert.ok(Date.now() - started < VISIBILITY_WAIT_MS, `three made-up fresh ids took ${Date.now() - started} ms`);

    // An id the API did give out, whose run is then gone from visibility (deleted by an operator):
    // the API looks for it until the lag window ends, and every look costs the caller a read.
    const { stack, temporal } = current();
    const who = { sub: `reader-${uuidv7()}`, email: 'reader@quota.example', groups: [] };
    const token = await stack.issueToken(QUOTA_TENANT.id, who);
    const as = { token, tenant: QUOTA_TENANT.id };
    const made = await call('POST', '/v1/access/ensure', {
      ...as,
      body: {
        entitlements: [{ target: target(QUOTA_ACCOUNTS[3]), role: 'ReadOnlyAccess', duration_seconds: 600 }],
        justification: { reason: 'read amplification' },
        starts_at: new Date(Date.now() + 3_600_000).toISOString(),
      },
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const grant = made.body.grants[0];
    const row = await eventually('the grant in visibility', async () => {
      for await (const found of temporal.workflow.list({ query: `AccessGrantId = '${grant.id}'` })) return found;
      return undefined;
    });
    await temporal.workflowService.deleteWorkflowExecution({ namespace: temporal.options.namespace, workflowExecution: { workflowId: row.workflowId, runId: row.runId } });
    // All but two of the principal's read burst spent (the look above took one).
    for (let i = 0; i < QUOTA_TENANT.readBurst - 3; i++) assert.equal((await call('GET', '/v1/access/grants?limit=1', as)).status, 200);
    const read = await call('GET', `/v1/access/grants/${grant.id}`, as);
    assert.equal(read.status, 429, JSON.stringify(read.body));
    assertErrorShape(read, 'rate_limited');
  });
});
