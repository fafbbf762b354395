// Credentials, tenants and bad input: a clear error in the contract's shape, and nothing changes.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, SignJWT } from 'jose';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectApi, createApi } from '../src/api/server';
import { startOwnTemporal, stopChild } from '../scripts/stack';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { assertErrorShape, assertNoGrantRun, call, current, freshAccount, OTHER_TENANT, target, TENANT, tokenFor, USERS } from './support/world';

const body = (account = freshAccount()) => ({ entitlements: [{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 60 }] });

describe('authentication and tenants', function () {
  this.timeout(60_000);

  it('answers 401 for a missing, malformed, expired or wrongly signed token', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ ...USERS.alice })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('https://idp.example.example/')
      .setAudience('access-api')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
    const expired = await current().stack.issueToken(TENANT.id, USERS.alice, { expiresIn: -60 });
    const cases: [string, string | null][] = [
      ['missing', null],
      ['malformed', 'not-a-jwt'],
      ['expired', expired],
      ['wrongly signed', forged],
    ];
    const account = freshAccount();
    for (const [what, token] of cases) {
      const reply = await call('POST', '/v1/access/ensure', { token, body: body(account) });
      assert.equal(reply.status, 401, what);
      assertErrorShape(reply, 'unauthenticated');
    }
    await assertNoGrantRun('alice', account, 'ReadOnlyAccess');
  });

  it("answers 403 tenant_mismatch for a token of one tenant and another tenant's header", async () => {
    const account = freshAccount();
    const reply = await call('POST', '/v1/access/ensure', { token: await tokenFor('alice', TENANT.id), tenant: OTHER_TENANT.id, body: body(account) });
    assert.equal(reply.status, 403);
    assertErrorShape(reply, 'tenant_mismatch');
    await assertNoGrantRun('alice', account, 'ReadOnlyAccess');
    const unknown = await call('POST', '/v1/access/ensure', { tenant: '00000000-0000-4000-8000-000000000000', body: body() });
    assert.equal(unknown.status, 403);
    assertErrorShape(unknown, 'tenant_mismatch');
  });

  it('accepts the tenant id in any case, as the seed example writes it', async () => {
    const reply = await call('POST', '/v1/access/ensure', { tenant: TENANT.id.toUpperCase(), body: { ...body(), dry_run: true } });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
  });

  it('answers 400 for a missing or malformed X-Tenant-ID', async () => {
    for (const tenant of [null, 'not-a-uuid']) {
      const reply = await call('POST', '/v1/access/ensure', { tenant, body: body() });
      assert.equal(reply.status, 400, String(tenant));
      assertErrorShape(reply, 'invalid_request');
    }
  });
});

describe('request validation', function () {
  this.timeout(60_000);

  // Every payload names this account (where it names one): nothing may start for it.
  const account = freshAccount();
  const bad: [string, unknown][] = [
    ['bad target format', { entitlements: [{ target: `arn:aws:iam::${account}`, role: 'ReadOnlyAccess' }] }],
    ['short account id', { entitlements: [{ target: 'AWS::Account::12345', role: 'ReadOnlyAccess' }] }],
    ['negative duration', { entitlements: [{ target: `AWS::Account::${account}`, role: 'ReadOnlyAccess', duration_seconds: -5 }] }],
    ['fractional duration', { entitlements: [{ target: `AWS::Account::${account}`, role: 'ReadOnlyAccess', duration_seconds: 1.5 }] }],
    ['unknown field', { entitlements: [{ target: `AWS::Account::${account}`, role: 'ReadOnlyAccess' }], urgent: true }],
    ['unknown entitlement field', { entitlements: [{ target: `AWS::Account::${account}`, role: 'ReadOnlyAccess', account: 1 }] }],
    ['wrong types', { entitlements: [{ target: Number(account), role: ['ReadOnlyAccess'] }], dry_run: 'yes' }],
    ['no entitlements', { entitlements: [] }],
    ['missing entitlements', { justification: { reason: 'x' } }],
    ['attachments not strings', { entitlements: [{ target: `AWS::Account::${account}`, role: 'ReadOnlyAccess' }], justification: { attachments: [1] } }],
    ['a role that is not a permission set name', { entitlements: [{ target: `AWS::Account::${account}`, role: "x' OR 1=1" }] }],
    ['the same entitlement twice', { entitlements: [{ target: `AWS::Account::${account}`, role: 'ReadOnlyAccess' }, { target: `AWS::Account::${account}`, role: 'ReadOnlyAccess' }] }],
  ];
  for (const [what, payload] of bad) {
    it(`answers 400 invalid_request with details for ${what}`, async () => {
      const reply = await call('POST', '/v1/access/ensure', { body: payload });
      assert.equal(reply.status, 400);
      assertErrorShape(reply, 'invalid_request');
      assert.ok(Array.isArray(reply.body.details.issues) && reply.body.details.issues.length > 0);
      await assertNoGrantRun('alice', account, 'ReadOnlyAccess');
    });
  }

  it('answers 400 for a body that is not JSON', async () => {
    const reply = await call('POST', '/v1/access/ensure', { rawBody: '{"entitlements": [' });
    assert.equal(reply.status, 400);
    assertErrorShape(reply, 'invalid_request');
  });

  it('answers 404 not_found in the same shape for an unknown path', async () => {
    const reply = await call('GET', '/v1/nothing-here');
    assert.equal(reply.status, 404);
    assertErrorShape(reply, 'not_found');
  });

  it('answers 405 method_not_allowed with Allow, in the same shape, for a method a known path does not have', async () => {
    for (const [method, urlPath, allow] of [
      ['DELETE', '/v1/access/ensure', 'POST'],
      ['POST', '/v1/access/grants', 'GET, HEAD'],
      ['PATCH', `/v1/access/grants/${randomUUID()}`, 'GET, HEAD'],
      ['GET', `/v1/access/requests/${randomUUID()}/review`, 'POST'],
      ['PUT', '/healthz', 'GET, HEAD'],
    ]) {
      const reply = await call(method, urlPath);
      assert.deepEqual([reply.status, reply.headers?.get('allow')], [405, allow], `${method} ${urlPath}`);
      assertErrorShape(reply, 'method_not_allowed');
    }
    // fetch refuses to send TRACE; a client that does gets the same, before anything reads its body.
    const traced = await new Promise<{ status?: number; allow?: string; body: string }>((resolve, reject) => {
      const req = request(`${current().baseUrl}/v1/integrations/slack/interactions`, { method: 'TRACE', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, allow: res.headers.allow, body: text }));
      });
      req.on('error', reject);
      req.end('payload=');
    });
    assert.deepEqual([traced.status, traced.allow], [405, 'POST'], traced.body);
    assertErrorShape({ body: JSON.parse(traced.body) }, 'method_not_allowed');
  });
});

describe('when Temporal cannot be reached', function () {
  this.timeout(120_000);

  it('answers 503 unavailable, and /readyz says so while /healthz is fine', async () => {
    const config = loadConfig(current().stack.configPath);
    const unreachable = connectApi('127.0.0.1:1');
    const server = createApi(config, unreachable).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const reply = await fetch(`${base}/v1/access/ensure`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor('alice')}`, 'x-tenant-id': TENANT.id, 'content-type': 'application/json' },
        body: JSON.stringify(body()),
      });
      assert.equal(reply.status, 503);
      assertErrorShape({ body: await reply.json() }, 'unavailable');
      assert.equal((await fetch(`${base}/readyz`)).status, 503);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
    } finally {
      server.close();
    }
  });
});

describe('when Temporal is overloaded', function () {
  this.timeout(120_000);

  it('answers 503 unavailable with Retry-After, never 500, when Temporal refuses calls past its rate (RESOURCE_EXHAUSTED)', async () => {
    // A server of its own whose namespace takes one visibility call a second: every listing is one.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'access-overloaded-'));
    const temporal = await startOwnTemporal(dir, { 'frontend.namespaceRPS.visibility': 1, 'frontend.namespaceBurstRatio.visibility': 1 });
    const connection = connectApi(temporal.address);
    // Its log (a line per refused call) is not this test's to show.
    const quiet = createLogger('api', { write: () => {} });
    const server = createApi(loadConfig(current().stack.configPath), connection, quiet).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const headers = { authorization: `Bearer ${await tokenFor('alice')}`, 'x-tenant-id': TENANT.id };
      const replies = await Promise.all(
        Array.from({ length: 40 }, async () => {
          const reply = await fetch(`${base}/v1/access/grants`, { headers });
          return { status: reply.status, retryAfter: reply.headers.get('retry-after'), body: await reply.json() };
        }),
      );
      const statuses = replies.map((r) => r.status);
      assert.ok(statuses.every((s) => s === 200 || s === 503), `statuses: ${statuses}`);
      const refused = replies.filter((r) => r.status === 503);
      assert.ok(refused.length > 0, 'Temporal refused some calls');
      for (const reply of refused) {
        assertErrorShape(reply, 'unavailable');
        assert.equal(reply.retryAfter, '1');
      }
    } finally {
      server.close();
      await connection.close();
      await stopChild(temporal.child);
    }
  });
});

describe('while the API shuts down', () => {
  it('/readyz answers 503, so a load balancer sends nothing new, while Temporal is fine', async () => {
    const config = loadConfig(current().stack.configPath);
    const connection = connectApi(current().stack.temporalAddress);
    const server = createApi(config, connection, undefined, () => true).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const reply = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`);
      assert.equal(reply.status, 503);
      const body = (await reply.json()) as { message: string };
      assertErrorShape({ body }, 'unavailable');
      assert.match(body.message, /shutting down/);
    } finally {
      server.close();
      await connection.close();
    }
  });
});
