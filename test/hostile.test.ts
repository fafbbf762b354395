// Hostile input: thousands of random bodies, headers, tokens and ids. Whatever arrives, the API
// answers in the contract's error shape, never with a 5xx, and nothing starts or changes.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ListAccountAssignmentsCommand } from '@aws-sdk/client-sso-admin';
import fc from 'fast-check';
import { BODY_LIMIT_BYTES, MAX_ENTITLEMENTS } from '../src/api/schemas';
import { DRY_RUN_GRANT_ID } from '../src/service/ensure';
import { equals } from '../src/service/runs';
import { searchAttributes } from '../src/workflows/messages';
import { assertErrorShape, assignmentsOf, current, ensure, eventually, freshAccount, grantReaching, OTHER_TENANT, permissionSetArnOf, target, TENANT, tokenFor } from './support/world';
import { countFromEnv } from './support/env';

const RUNS = countFromEnv('FUZZ_RUNS', 800);
/** Every principal the fuzzing signs tokens for starts with this, so their workflows are easy to count. */
const FUZZ_PREFIX = 'fuzz-';
const ACCOUNTS = [freshAccount(), freshAccount()];
const VALID_BODY = {
  entitlements: ACCOUNTS.map((account) => ({ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 })),
  justification: { reason: 'fuzzing', attachments: ['OPS-1'] },
};

let requests = 0;
async function send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: any; allow: string | null }> {
  requests += 1;
  const res = await fetch(current().baseUrl + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed, allow: res.headers.get('allow') };
}

function assertRejected(reply: { status: number; body: any }, allowed: number[]) {
  assert.ok(allowed.includes(reply.status), `status ${reply.status}: ${JSON.stringify(reply.body).slice(0, 500)}`);
  assertErrorShape(reply);
}

const fuzzToken = (sub = `${FUZZ_PREFIX}${randomUUID()}`) => current().stack.issueToken(TENANT.id, { sub, email: `${sub}@example.com`, groups: ['engineering'] });
const jsonHeaders = (token: string, tenant = TENANT.id) => ({ authorization: `Bearer ${token}`, 'x-tenant-id': tenant, 'content-type': 'application/json' });

/** Printable ASCII: what an HTTP client can put in a header at all. */
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 });
const base64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 1, maxLength: 120 });

/** One change that makes a valid ensure body invalid, whatever else it holds. */
const corruption: fc.Arbitrary<(body: any) => void> = fc.oneof(
  fc.string().filter((s) => !/^AWS::Account::\d{12}$/.test(s)).map((bad) => (b: any) => void (b.entitlements[0].target = bad)),
  fc.string().filter((s) => !/^[\w+=,.@-]{1,32}$/.test(s)).map((bad) => (b: any) => void (b.entitlements[1].role = bad)),
  fc
    .oneof(fc.integer({ max: 0 }), fc.double({ noInteger: true }), fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.nat()))
    .map((bad) => (b: any) => void (b.entitlements[0].duration_seconds = bad)),
  fc
    .tuple(fc.string({ minLength: 1 }).filter((k) => !['entitlements', 'justification', 'dry_run'].includes(k)), fc.jsonValue())
    .map(([key, value]) => (b: any) => void Object.defineProperty(b, key, { value, enumerable: true })),
  fc
    .tuple(fc.string({ minLength: 1 }).filter((k) => !['target', 'role', 'duration_seconds'].includes(k)), fc.jsonValue())
    .map(([key, value]) => (b: any) => void Object.defineProperty(b.entitlements[1], key, { value, enumerable: true })),
  fc
    .oneof(fc.constant([]), fc.jsonValue().filter((v) => !Array.isArray(v)), fc.constant(Array.from({ length: MAX_ENTITLEMENTS + 1 }, (_, i) => ({ target: target(String(400000000000 + i)), role: 'ReadOnlyAccess' }))))
    .map((bad) => (b: any) => void (b.entitlements = bad)),
  fc.oneof(fc.string(), fc.integer(), fc.array(fc.jsonValue(), { minLength: 1 })).map((bad) => (b: any) => void (b.justification = bad)),
  fc.oneof(fc.integer(), fc.boolean(), fc.constant(null)).map((bad) => (b: any) => void (b.justification.reason = bad)),
  fc.oneof(fc.string(), fc.array(fc.oneof(fc.integer(), fc.boolean(), fc.object()), { minLength: 1 })).map((bad) => (b: any) => void (b.justification.attachments = bad)),
  fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.object()).map((bad) => (b: any) => void (b.dry_run = bad)),
  fc.constant((b: any) => void (b.entitlements[1] = { ...b.entitlements[0] })),
);

describe('hostile input', function () {
  this.timeout(10 * 60_000);

  let grantsBefore: number;
  const grantRuns = async () => (await current().temporal.workflow.count(`WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew'`)).count;
  before(async () => {
    grantsBefore = await grantRuns();
  });

  it('answers random JSON bodies with 400 in the error shape', async () => {
    const headers = jsonHeaders(await fuzzToken());
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        assertRejected(await send('POST', '/v1/access/ensure', headers, JSON.stringify(value)), [400]);
      }),
      { numRuns: RUNS },
    );
  });

  it('answers every corruption of a valid body with 400 and zod issues', async () => {
    const headers = jsonHeaders(await fuzzToken());
    await fc.assert(
      fc.asyncProperty(corruption, async (corrupt) => {
        const body = structuredClone(VALID_BODY);
        corrupt(body);
        const reply = await send('POST', '/v1/access/ensure', headers, JSON.stringify(body));
        assertRejected(reply, [400]);
        assert.ok(reply.body.code !== 'invalid_request' || reply.body.message.includes('JSON') || reply.body.details.issues.length > 0);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('answers random bytes, content types and broken JSON with 400, and big bodies with 413', async () => {
    const token = await fuzzToken();
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.uint8Array().map((a) => Buffer.from(a).toString('latin1'))), headerText, async (raw, contentType) => {
        const reply = await send('POST', '/v1/access/ensure', { ...jsonHeaders(token), 'content-type': contentType }, raw);
        assertRejected(reply, [400]);
      }),
      { numRuns: RUNS },
    );
    const big = JSON.stringify({ ...VALID_BODY, justification: { reason: 'x'.repeat(BODY_LIMIT_BYTES + 1024) } });
    const tooLarge = await send('POST', '/v1/access/ensure', jsonHeaders(token), big);
    assert.equal(tooLarge.status, 413);
    assertErrorShape(tooLarge, 'payload_too_large');
    const unauthenticatedAndLarge = await send('POST', '/v1/access/ensure', { 'content-type': 'application/json' }, big);
    assertRejected(unauthenticatedAndLarge, [413]);
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    assertRejected(await send('POST', '/v1/access/ensure', jsonHeaders(token), deep), [400]);
  });

  it('answers random, tampered and misdirected credentials with 400, 401 or 403', async () => {
    const valid = await fuzzToken();
    const [head, payload, signature] = valid.split('.');
    // A changed character inside a segment always changes its bytes (the last one may not).
    const tamper = (segment: string, at: number) => {
      const i = at % (segment.length - 1);
      return segment.slice(0, i) + (segment[i] === 'A' ? 'B' : 'A') + segment.slice(i + 1);
    };
    const authorization = fc.oneof(
      fc.constant(undefined),
      headerText,
      headerText.map((t) => `Bearer ${t}`),
      fc.tuple(base64url, base64url, base64url).map((parts) => `Bearer ${parts.join('.')}`),
      fc.nat().map((at) => `Bearer ${head}.${tamper(payload, at)}.${signature}`),
      fc.nat().map((at) => `Bearer ${head}.${payload}.${tamper(signature, at)}`),
      fc.constant(`Bearer ${head}.${payload}.`),
      fc.constant(`Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`),
      fc.constant(`Bearer ${valid}`),
    );
    const tenant = fc.oneof(fc.constant(undefined), headerText, fc.uuid().map(String), fc.constant(OTHER_TENANT.id), fc.constant(TENANT.id));
    await fc.assert(
      fc.asyncProperty(authorization, tenant, async (auth, tenantId) => {
        // The one genuinely valid pair is not hostile input.
        fc.pre(!(auth === `Bearer ${valid}` && tenantId === TENANT.id));
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (auth !== undefined) headers.authorization = auth;
        if (tenantId !== undefined) headers['x-tenant-id'] = tenantId;
        // A real body, not a dry run: were a credential wrongly accepted, a grant would start.
        assertRejected(await send('POST', '/v1/access/ensure', headers, JSON.stringify(VALID_BODY)), [400, 401, 403]);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('verifies tokens with any claims, and dry-runs them without a trace', async () => {
    const claims = fc.record({
      sub: fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 50 })).map((s) => FUZZ_PREFIX + s),
      email: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
      groups: fc.option(fc.array(fc.string({ maxLength: 80 }), { maxLength: 10 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(claims, async (c) => {
        const token = await current().stack.issueToken(TENANT.id, c);
        const reply = await send('POST', '/v1/access/ensure', jsonHeaders(token), JSON.stringify({ ...VALID_BODY, dry_run: true }));
        if (reply.status === 200) {
          for (const grant of reply.body.grants) {
            assert.equal(grant.id, DRY_RUN_GRANT_ID);
            assert.equal(grant.change, 'activated');
          }
        } else {
          assertRejected(reply, [401, 403]);
        }
      }),
      { numRuns: RUNS / 2 },
    );
  });

  it('answers random ids, paths and filters with 400 or 404 (405 with Allow for a method a path does not answer), and never lists a stranger', async () => {
    const headers = jsonHeaders(await fuzzToken());
    const segment = fc.string({ minLength: 1, maxLength: 60 }).map(encodeURIComponent);
    const jsonBody = fc.jsonValue().map((v) => JSON.stringify(v));
    const query = fc.dictionary(fc.constantFrom('status', 'target', 'role', 'limit', 'cursor', 'page', 'status[]', 'x'), fc.oneof(fc.string(), fc.constantFrom('active', 'pending', `AWS::Account::${ACCOUNTS[0]}`, "' OR AccessTenant != '")));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(fc.constant('GET'), segment.map((id) => `/v1/access/grants/${id}`), fc.constant(undefined)),
          fc.tuple(fc.constant('POST'), segment.map((id) => `/v1/access/grants/${id}/revoke`), jsonBody),
          fc.tuple(fc.constant('POST'), segment.map((id) => `/v1/access/requests/${id}/review`), jsonBody),
          fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'), segment.map((p) => `/v1/${p}`), fc.constant(undefined)),
          fc.tuple(fc.constant('GET'), query.map((q) => `/v1/access/grants?${new URLSearchParams(q)}`), fc.constant(undefined)),
        ),
        async ([method, path, body]) => {
          const reply = await send(method, path, headers, body);
          if (reply.status === 200) assert.deepEqual(reply.body, { grants: [], next_cursor: null }, path);
          else if (reply.status === 405) {
            // A segment of "." or ".." is resolved by the client: another route's path, asked with a method it does not answer.
            assertRejected(reply, [405]);
            assert.equal(reply.body.code, 'method_not_allowed');
            assert.ok(reply.allow && !reply.allow.split(', ').includes(method), `${method} ${path}: Allow ${reply.allow}`);
          } else assertRejected(reply, [400, 404]);
        },
      ),
      { numRuns: RUNS * 2 },
    );
    // Well-formed ids that exist nowhere: the same 404, after the same visibility wait as a real one.
    for (const id of [randomUUID(), randomUUID()]) {
      assertRejected(await send('GET', `/v1/access/grants/${id}`, headers), [404]);
      assertRejected(await send('POST', `/v1/access/requests/${id}/review`, headers, '{"decision":"approve"}'), [404]);
    }
  });

  it('changed nothing: no workflow started, no assignment made', async () => {
    const { temporal, sso, stack } = current();
    // Visibility lags a little behind a start: a grant started after the fuzzing, once listed, shows
    // it has taken in the starts that came before.
    const marker = await ensure([{ target: target(freshAccount()), role: 'ReadOnlyAccess', duration_seconds: 60 }]);
    assert.equal(marker.status, 200, JSON.stringify(marker.body));
    const markerId = marker.body.grants[0].id;
    await eventually('the grant started after the fuzzing to be listed', async () =>
      (await temporal.workflow.count(`AccessGrantId = '${markerId}'`)).count === 1 ? true : undefined,
    );
    const fuzzGrants = await temporal.workflow.count(`WorkflowType = 'grantWorkflow' AND AccessPrincipal STARTS_WITH '${FUZZ_PREFIX}'`);
    assert.equal(fuzzGrants.count, 0);
    assert.equal(await grantRuns(), grantsBefore + 1, 'no grant but the one started after the fuzzing');
    for (const account of ACCOUNTS) {
      const listed = await sso.send(
        new ListAccountAssignmentsCommand({ InstanceArn: stack.instanceArn, AccountId: account, PermissionSetArn: await permissionSetArnOf('ReadOnlyAccess') }),
      );
      assert.deepEqual(listed.AccountAssignments ?? [], []);
    }
    console.log(`      (${requests} hostile requests, none answered 5xx, nothing changed)`);
  });
});

describe('values that reach Temporal', function () {
  this.timeout(120_000);

  it('refuses to build a visibility query from a value that could end its literal', () => {
    assert.equal(equals(searchAttributes.target, 'AWS::Account::123456789012'), "AccessTarget = 'AWS::Account::123456789012'");
    // A space stays inside the quotes (a group's name may hold one); a quote or a backslash could end them.
    assert.equal(equals(searchAttributes.target, 'AWS::IdentityStore::Group::data admins'), "AccessTarget = 'AWS::IdentityStore::Group::data admins'");
    for (const value of ["x' OR AccessTenant != '", 'a"b', 'a\\b', "x') OR ('1'='1", "a b'"]) {
      assert.throws(() => equals(searchAttributes.principal, value), /unsafe value/);
    }
  });

  it('keeps a principal whose id is a query fragment to its own grants, under an id it cannot shape', async () => {
    const sub = `evil-x' OR AccessTenant != '' OR AccessPrincipal = 'alice`;
    const token = await current().stack.issueToken(TENANT.id, { sub, email: 'mallory@example.com', groups: ['engineering'] });
    const account = freshAccount();
    const created = await send('POST', '/v1/access/ensure', jsonHeaders(token), JSON.stringify({ entitlements: [{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }] }));
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const id = created.body.grants[0].id;
    const alice = await tokenFor('alice');
    const aliceAccount = freshAccount();
    assert.equal((await send('POST', '/v1/access/ensure', jsonHeaders(alice), JSON.stringify({ entitlements: [{ target: target(aliceAccount), role: 'ReadOnlyAccess', duration_seconds: 600 }] }))).status, 200);

    const listed = await eventually('the grant to be listed', async () => {
      const reply = await send('GET', '/v1/access/grants', jsonHeaders(token));
      assert.equal(reply.status, 200);
      return reply.body.grants.length > 0 ? reply.body.grants : undefined;
    });
    assert.deepEqual(listed.map((g: any) => g.id), [id]);
    let workflowId = '';
    for await (const run of current().temporal.workflow.list({ query: equals(searchAttributes.grantId, id) })) workflowId = run.workflowId;
    assert.equal(workflowId.split('/')[1], TENANT.id);
    assert.match(workflowId, /^grant\/[0-9a-f-]{36}\/evil-x%27%20OR[\w.~%-]+\/\d{12}\/ReadOnlyAccess$/);
  });
});

describe('tenant isolation', function () {
  this.timeout(180_000);

  it("lets no one of another tenant read, review, revoke or learn of a tenant's grants", async () => {
    const pendingAccount = freshAccount();
    const activeAccount = freshAccount();
    const alice = jsonHeaders(await tokenFor('alice'));
    const pending = await send('POST', '/v1/access/ensure', alice, JSON.stringify({ entitlements: [{ target: target(pendingAccount), role: 'AdministratorAccess', duration_seconds: 600 }], justification: { reason: 'incident OPS-7' } }));
    const active = await send('POST', '/v1/access/ensure', alice, JSON.stringify({ entitlements: [{ target: target(activeAccount), role: 'ReadOnlyAccess', duration_seconds: 600 }] }));
    assert.equal(pending.body.grants?.[0]?.change, 'requested', JSON.stringify(pending.body));
    assert.equal(active.body.grants?.[0]?.change, 'activated', JSON.stringify(active.body));
    const grantIds = [pending.body.grants[0].id, active.body.grants[0].id];
    const requestId = pending.body.grants[0].access_request_id;

    // Members of the other tenant, with the same principal ids as the grantee and the reviewer,
    // and every group that means something in either tenant.
    const groups = ['engineering', 'platform-admins', 'reviewers'];
    const intruders = [
      await tokenFor('oscar'),
      await current().stack.issueToken(OTHER_TENANT.id, { sub: 'alice', email: 'alice@example.com', groups }),
      await current().stack.issueToken(OTHER_TENANT.id, { sub: 'carol', email: 'carol@example.com', groups }),
    ];
    for (const token of intruders) {
      const headers = jsonHeaders(token, OTHER_TENANT.id);
      const unknown = randomUUID();
      const attempts = await Promise.all([
        send('GET', `/v1/access/grants/${unknown}`, headers),
        ...grantIds.map((id) => send('GET', `/v1/access/grants/${id}`, headers)),
        ...grantIds.map((id) => send('POST', `/v1/access/grants/${id}/revoke`, headers, '{"reason":"mine now"}')),
        send('POST', `/v1/access/requests/${unknown}/review`, headers, '{"decision":"approve"}'),
        send('POST', `/v1/access/requests/${requestId}/review`, headers, '{"decision":"approve"}'),
        send('POST', `/v1/access/requests/${grantIds[0]}/review`, headers, '{"decision":"approve"}'),
        send('GET', `/v1/access/requests/${unknown}`, headers),
        send('GET', `/v1/access/requests/${requestId}`, headers),
      ]);
      for (const reply of attempts) assertRejected(reply, [404]);
      // The answers for real ids and for ids that exist nowhere are the same, word for word.
      assert.deepEqual(attempts[1].body, attempts[0].body);
      assert.deepEqual(attempts[3].body, attempts[0].body);
      assert.deepEqual(attempts[6].body, attempts[5].body);
      assert.deepEqual(attempts[9].body, attempts[8].body);
      for (const filter of ['', '?status=pending', '?mine=true']) {
        const listed = await send('GET', `/v1/access/requests${filter}`, headers);
        assert.equal(listed.status, 200, JSON.stringify(listed.body));
        for (const request of listed.body.requests) assert.notEqual(request.id, requestId, 'listed the other tenant’s request');
      }

      for (const filter of ['', `?target=${encodeURIComponent(target(pendingAccount))}`, `?target=${encodeURIComponent(target(activeAccount))}&status=active`, '?status=pending']) {
        const listed = await send('GET', `/v1/access/grants${filter}`, headers);
        assert.equal(listed.status, 200);
        for (const grant of listed.body.grants) assert.ok(!grantIds.includes(grant.id), `listed ${grant.id}`);
      }
      const probe = await send('POST', '/v1/access/ensure', headers, JSON.stringify({ entitlements: [{ target: target(activeAccount), role: 'ReadOnlyAccess' }], dry_run: true }));
      assert.equal(probe.status, 200, JSON.stringify(probe.body));
      assert.equal(probe.body.grants[0].change, 'activated', 'a dry run in another tenant does not see the grant');

      // Its own token with this tenant's header is a mismatch on every endpoint, not a way in.
      const misdirected = jsonHeaders(token, TENANT.id);
      for (const [method, path] of [
        ['GET', `/v1/access/grants/${grantIds[1]}`],
        ['GET', '/v1/access/grants'],
        ['POST', `/v1/access/grants/${grantIds[1]}/revoke`],
        ['POST', `/v1/access/requests/${requestId}/review`],
        ['GET', `/v1/access/requests/${requestId}`],
        ['GET', '/v1/access/requests'],
      ]) {
        assertRejected(await send(method, path, misdirected, method === 'POST' ? '{"decision":"approve"}' : undefined), [403]);
      }
    }

    const pendingNow = await send('GET', `/v1/access/grants/${grantIds[0]}`, alice);
    assert.equal(pendingNow.body.status, 'pending');
    const activeNow = await grantReaching(grantIds[1], 'active');
    assert.equal(await assignmentsOf('alice', activeAccount, 'ReadOnlyAccess'), 1);
    assert.equal(activeNow.diagnostics.some((d: any) => d.code === 'revoked'), false);
  });
});
