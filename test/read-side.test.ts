// The read side (issue 20): every read is answered from Temporal visibility (search attributes and
// the run's memo), never by a workflow query; an unknown id is answered at once; a request is found
// by any of its ids. Through HTTP on the real stack.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { VISIBILITY_WAIT_MS } from '../src/service/runs';
import { assertErrorShape, call, current, ensure, eventually, freshAccount, grantReaching, target } from './support/world';

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
});
