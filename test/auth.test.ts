// Bearer tokens: whose they are (one tenant's, by issuer, audience and required_claims) and how
// strictly they are checked. The Authenticator in-process with real signed tokens and JWKS files;
// the tenant a token belongs to, and a malformed subject, also over HTTP.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload, SignJWT } from 'jose';
import { Authenticator, VERIFIED_BYTES } from '../src/api/auth';
import { connectApi, createApi } from '../src/api/server';
import { type AppConfig, ConfigError, loadConfig } from '../src/config';
import { AccessError } from '../src/domain/errors';
import { tokensChecked, type TokensChecked } from '../src/metrics';
import type { Caller } from '../src/service/runs';
import { repoRoot } from '../scripts/stack';
import { heapUsedAfterGc, MiB } from './support/heap';
import { assertErrorShape, call, current, freshAccount, target, TENANT, tokenFor } from './support/world';

const dir = mkdtempSync(path.join(os.tmpdir(), 'access-auth-'));
const ISSUER = 'https://login.example.com/';
const ACME = { id: '0a000000-0000-4000-8000-00000000ac3e', name: 'acme' };
const GLOBEX = { id: '0b000000-0000-4000-8000-000000000b10', name: 'globex' };
const HMAC_SECRET = Buffer.from('a shared secret that no identity provider should sign access tokens with');

interface Keys {
  privateKey: CryptoKey;
  kid: string;
  jwksFile: string;
  /** An ES512 (P-521) key in the same key set: asymmetric, but not on the list. */
  p521: CryptoKey;
}
let keys: Keys;

before(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(pair.publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwksFile = path.join(dir, 'jwks.json');
  // Keys of algorithms off the list in the key set too: tokens signed with them are still refused.
  const oct = { kty: 'oct', kid: 'shared', alg: 'HS256', k: HMAC_SECRET.toString('base64url') };
  const p521 = await generateKeyPair('ES512', { extractable: true });
  const p521Jwk = { ...(await exportJWK(p521.publicKey)), kid: 'p521', alg: 'ES512', use: 'sig' };
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' }, oct, p521Jwk] }));
  keys = { privateKey: pair.privateKey, kid, jwksFile, p521: p521.privateKey };
});

type TenantAuth = Record<string, unknown>;
function tenantEntry(t: { id: string; name: string }, auth: TenantAuth = {}) {
  // Acme on the world's instance; Globex on one of its own (tenants on one instance must list their accounts).
  const instanceArn = t === ACME ? current().stack.instanceArn : 'arn:aws:sso:::instance/ssoins-0000000000000b10';
  const aws = { region: 'us-east-1', sso_instance_arn: instanceArn, identity_store_id: current().stack.identityStoreId };
  return { ...t, auth: { issuer: ISSUER, audience: 'access-api', jwks_file: keys.jwksFile, ...auth }, aws, policies: path.join(repoRoot, 'policies') };
}

/** access_tokens_checked_total, by how. */
async function countsOf(checked: TokensChecked): Promise<{ signature: number; remembered: number }> {
  const { values } = await checked.get();
  const by = (how: string) => values.find((v) => v.labels.by === how)?.value ?? 0;
  return { signature: by('signature'), remembered: by('remembered') };
}

let files = 0;
function configOf(tenants: unknown[]): AppConfig {
  const file = path.join(dir, `config-${++files}.json`);
  writeFileSync(file, JSON.stringify({ tenants }));
  return loadConfig(file);
}

/** Acme and Globex share one identity provider (issuer, audience, keys) and tell apart by org_id. */
const sharedIdp = (order: 'acme first' | 'globex first' = 'acme first') => {
  const tenants = [tenantEntry(ACME, { required_claims: { org_id: 'acme' } }), tenantEntry(GLOBEX, { required_claims: { org_id: ['globex', 'globex-eu'] } })];
  return configOf(order === 'acme first' ? tenants : tenants.reverse());
};

interface TokenOptions {
  alg?: string;
  /** Seconds from now; null: no exp at all. */
  exp?: number | null;
  /** Seconds from now (negative: in the past); null: no iat. */
  iat?: number | null;
  nbf?: number;
  audience?: string | string[];
}
async function tokenOf(claims: JWTPayload, opts: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const alg = opts.alg ?? 'ES256';
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg, kid: { HS256: 'shared', ES512: 'p521' }[alg] ?? keys.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(opts.audience ?? 'access-api');
  if (opts.iat !== null) jwt.setIssuedAt(now + (opts.iat ?? 0));
  if (opts.exp !== null) jwt.setExpirationTime(now + (opts.exp ?? 600));
  if (opts.nbf !== undefined) jwt.setNotBefore(now + opts.nbf);
  return jwt.sign({ HS256: HMAC_SECRET, ES512: keys.p521 }[alg] ?? keys.privateKey);
}

const alice = { sub: 'alice', email: 'alice@acme.example', groups: ['engineering'], org_id: 'acme' };

function authenticate(config: AppConfig, token: string, tenantId: string): Promise<Caller> {
  return new Authenticator(config).authenticate(`Bearer ${token}`, tenantId);
}

/** The error's code, or 'accepted'. */
async function outcome(config: AppConfig, token: string, tenantId: string): Promise<string> {
  try {
    const caller = await authenticate(config, token, tenantId);
    return `accepted for ${caller.tenant.name}`;
  } catch (err) {
    if (err instanceof AccessError) return err.code;
    throw err;
  }
}

describe('a token belongs to one tenant', () => {
  it("is the tenant's whose required_claims it meets, and tenant_mismatch with another's header, whatever the tenants' order", async () => {
    for (const order of ['acme first', 'globex first'] as const) {
      const config = sharedIdp(order);
      const acmeToken = await tokenOf(alice);
      assert.equal(await outcome(config, acmeToken, ACME.id), 'accepted for acme', order);
      assert.equal(await outcome(config, acmeToken, GLOBEX.id), 'tenant_mismatch', order);
      // One of a list of values; a claim that is an array matches if it holds the value.
      const globexToken = await tokenOf({ ...alice, org_id: 'globex-eu' });
      assert.equal(await outcome(config, globexToken, GLOBEX.id), 'accepted for globex', order);
      assert.equal(await outcome(config, globexToken, ACME.id), 'tenant_mismatch', order);
      assert.equal(await outcome(config, await tokenOf({ ...alice, org_id: ['other', 'acme'] }), ACME.id), 'accepted for acme', order);
    }
  });

  it("is 401 unauthenticated when it meets no tenant's required_claims", async () => {
    const config = sharedIdp();
    for (const org_id of [undefined, 'initech', 'ACME', 42, ['initech'], { acme: true }]) {
      const token = await tokenOf({ ...alice, org_id });
      assert.equal(await outcome(config, token, ACME.id), 'unauthenticated', JSON.stringify(org_id));
    }
  });

  it('is 401 unauthenticated when it could be either of two tenants (an audience naming both)', async () => {
    const config = configOf([tenantEntry(ACME, { audience: 'acme-api' }), tenantEntry(GLOBEX, { audience: 'globex-api' })]);
    const both = await tokenOf(alice, { audience: ['acme-api', 'globex-api'] });
    assert.equal(await outcome(config, both, ACME.id), 'unauthenticated');
    assert.equal(await outcome(config, both, GLOBEX.id), 'unauthenticated');
    assert.equal(await outcome(config, await tokenOf(alice, { audience: 'globex-api' }), GLOBEX.id), 'accepted for globex');
  });

  it('refuses at start-up two tenants with one issuer and audience unless required_claims tell them apart, naming both', () => {
    const cases: [string, TenantAuth, TenantAuth][] = [
      ['no required_claims', {}, {}],
      ['required_claims on one only', { required_claims: { org_id: 'acme' } }, {}],
      ['values that overlap', { required_claims: { org_id: ['acme', 'shared'] } }, { required_claims: { org_id: 'shared' } }],
      ['different claims (a token may carry both)', { required_claims: { org_id: 'acme' } }, { required_claims: { team: 'globex' } }],
    ];
    for (const [what, a, b] of cases) {
      assert.throws(
        () => configOf([tenantEntry(ACME, a), tenantEntry(GLOBEX, b)]),
        (err: Error) => err instanceof ConfigError && err.message.includes(ACME.id) && err.message.includes(GLOBEX.id) && /required_claims/.test(err.message),
        what,
      );
    }
    // Told apart by one claim, whatever else they require; another audience needs nothing.
    configOf([tenantEntry(ACME, { required_claims: { org_id: 'acme', region: 'eu' } }), tenantEntry(GLOBEX, { required_claims: { org_id: ['globex'], region: 'eu' } })]);
    configOf([tenantEntry(ACME), tenantEntry(GLOBEX, { audience: 'globex-api' })]);
  });
});

describe('tokens are checked as strictly as an identity provider expects', () => {
  let config: AppConfig;
  before(() => {
    config = configOf([tenantEntry(ACME)]);
  });

  it('requires exp and sub (401)', async () => {
    assert.equal(await outcome(config, await tokenOf(alice, { exp: null }), ACME.id), 'unauthenticated');
    const { sub: _sub, ...noSubject } = alice;
    assert.equal(await outcome(config, await tokenOf(noSubject), ACME.id), 'unauthenticated');
    assert.equal(await outcome(config, await tokenOf(alice), ACME.id), 'accepted for acme');
  });

  it('accepts only the listed asymmetric algorithms, whatever keys the key set holds', async () => {
    assert.equal(await outcome(config, await tokenOf(alice, { alg: 'HS256' }), ACME.id), 'unauthenticated');
    assert.equal(await outcome(config, await tokenOf(alice, { alg: 'ES512' }), ACME.id), 'unauthenticated');
  });

  it('allows 30 seconds of clock skew by default, and what auth.clock_tolerance_seconds says', async () => {
    const justExpired = await tokenOf(alice, { exp: -10, iat: -600 });
    const notYetValid = await tokenOf(alice, { nbf: 10 });
    assert.equal(await outcome(config, justExpired, ACME.id), 'accepted for acme');
    assert.equal(await outcome(config, notYetValid, ACME.id), 'accepted for acme');
    assert.equal(await outcome(config, await tokenOf(alice, { exp: -90, iat: -600 }), ACME.id), 'unauthenticated');
    const strict = configOf([tenantEntry(ACME, { clock_tolerance_seconds: 0 })]);
    assert.equal(await outcome(strict, justExpired, ACME.id), 'unauthenticated');
    assert.equal(await outcome(strict, notYetValid, ACME.id), 'unauthenticated');
  });

  it('refuses tokens issued longer ago than auth.max_token_age_seconds, and tokens without iat then', async () => {
    const young = configOf([tenantEntry(ACME, { max_token_age_seconds: 600 })]);
    assert.equal(await outcome(young, await tokenOf(alice, { iat: -60 }), ACME.id), 'accepted for acme');
    assert.equal(await outcome(young, await tokenOf(alice, { iat: -1200, exp: 600 }), ACME.id), 'unauthenticated');
    assert.equal(await outcome(young, await tokenOf(alice, { iat: null }), ACME.id), 'unauthenticated');
    // Without the setting, age alone refuses nothing.
    assert.equal(await outcome(config, await tokenOf(alice, { iat: -86_400, exp: 600 }), ACME.id), 'accepted for acme');
  });

  it('remembers a verified token only while it is valid: never past its exp or max age, and for its own tenant only', async function () {
    this.timeout(20_000);
    const strict = new Authenticator(configOf([tenantEntry(ACME, { clock_tolerance_seconds: 0, max_token_age_seconds: 3 })]));
    const shortLived = await tokenOf(alice, { exp: 2 });
    const young = await tokenOf(alice, { exp: 600 });
    const outcomeOf = (token: string, tenantId: string) =>
      strict.authenticate(`Bearer ${token}`, tenantId).then(
        (caller) => `accepted for ${caller.tenant.name}`,
        (err: AccessError) => err.code,
      );
    assert.equal(await outcomeOf(shortLived, ACME.id), 'accepted for acme');
    assert.equal(await outcomeOf(young, ACME.id), 'accepted for acme');
    // Remembered, and still only for the tenant it belongs to.
    assert.equal(await outcomeOf(shortLived, GLOBEX.id), 'tenant_mismatch');
    // jose counts in whole seconds: 4.5 s is past both, whenever in its second the test began.
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    assert.equal(await outcomeOf(shortLived, ACME.id), 'unauthenticated', 'past its exp');
    assert.equal(await outcomeOf(young, ACME.id), 'unauthenticated', 'past max_token_age_seconds');
  });

  it('remembers verified tokens in a bounded number of bytes, however large their claims', async function () {
    this.timeout(120_000);
    const checked = tokensChecked();
    const auth = new Authenticator(configOf([tenantEntry(ACME)]), checked);
    // A user in 48 groups with long names: about 12 KB of claims.
    const groups = (i: number) => Array.from({ length: 48 }, (_, g) => `${i}-${g}-${'g'.repeat(240)}`);
    const before = heapUsedAfterGc();
    // 2,000 tokens of about 28 KB each (the token and its claims): 56 MB if each were kept.
    for (let i = 0; i < 2000; i++) {
      const caller = await auth.authenticate(`Bearer ${await tokenOf({ ...alice, sub: `user-${i}`, groups: groups(i) })}`, ACME.id);
      assert.equal(caller.principal.id, `user-${i}`);
    }
    const held = heapUsedAfterGc() - before;
    assert.ok(held < 2 * VERIFIED_BYTES, `the cache holds ${Math.round(held / MiB)} MiB`);
    // Still a cache: the latest token, sent again, is not verified again.
    const latest = await tokenOf({ ...alice, sub: 'user-latest' });
    await auth.authenticate(`Bearer ${latest}`, ACME.id);
    const counted = await countsOf(checked);
    assert.equal((await auth.authenticate(`Bearer ${latest}`, ACME.id)).principal.id, 'user-latest');
    assert.deepEqual(await countsOf(checked), { signature: counted.signature, remembered: counted.remembered + 1 });
    assert.equal(counted.signature, 2001, 'each token verified once');
  });

  it('finds the Identity Store user by auth.user_claim (default email), and refuses an unverified email with 403', async () => {
    const caller = await authenticate(config, await tokenOf({ ...alice, email_verified: true }), ACME.id);
    assert.equal(caller.principal.identityStoreUser, 'alice@acme.example');
    for (const email_verified of [false, 'false']) {
      const token = await tokenOf({ ...alice, email_verified });
      await assert.rejects(authenticate(config, token, ACME.id), (err: AccessError) => err.code === 'forbidden' && /email_verified/.test(err.message));
    }
    const { email: _email, ...noEmail } = alice;
    assert.equal(await outcome(config, await tokenOf(noEmail), ACME.id), 'unauthenticated', 'no email to find the user by');

    const byUpn = configOf([tenantEntry(ACME, { user_claim: 'upn' })]);
    const upnCaller = await authenticate(byUpn, await tokenOf({ ...alice, upn: 'alice.smith', email_verified: false }), ACME.id);
    assert.equal(upnCaller.principal.identityStoreUser, 'alice.smith', 'email_verified only matters when users are found by email');
    assert.equal(upnCaller.principal.email, 'alice@acme.example');
    assert.equal(await outcome(byUpn, await tokenOf(alice), ACME.id), 'unauthenticated', 'no upn claim');
  });
});

describe('tokens over HTTP', function () {
  this.timeout(60_000);
  let server: Server;
  let baseUrl: string;
  let connection: ReturnType<typeof connectApi>;

  before(async () => {
    connection = connectApi(current().stack.temporalAddress);
    const app = createApi(sharedIdp('globex first'), connection);
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await connection.close();
  });

  const dryRun = async (token: string, tenantId: string) => {
    const res = await fetch(`${baseUrl}/v1/access/ensure`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'x-tenant-id': tenantId, 'content-type': 'application/json' },
      body: JSON.stringify({ entitlements: [{ target: target(freshAccount()), role: 'ReadOnlyAccess' }], dry_run: true }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  it("answers 403 tenant_mismatch to one tenant's token with the header of another tenant on the same identity provider", async () => {
    const acmeToken = await tokenOf(alice);
    const mismatch = await dryRun(acmeToken, GLOBEX.id);
    assert.equal(mismatch.status, 403, JSON.stringify(mismatch.body));
    assertErrorShape(mismatch, 'tenant_mismatch');
    const own = await dryRun(acmeToken, ACME.id);
    assert.equal(own.status, 200, JSON.stringify(own.body));
  });

});

describe('a malformed subject over HTTP', () => {
  it('answers 401, never 500, to a sub or email that is not well-formed Unicode', async () => {
    for (const claims of [
      { sub: 'alice\ud800', email: 'alice@example.com', groups: ['engineering'] },
      { sub: 'alice', email: 'alice\udfff@example.com', groups: ['engineering'] },
    ]) {
      const token = await current().stack.issueToken(TENANT.id, claims);
      const reply = await call('POST', '/v1/access/ensure', { token, body: { entitlements: [{ target: target(freshAccount()), role: 'ReadOnlyAccess' }] } });
      assert.equal(reply.status, 401, JSON.stringify(reply.body));
      assertErrorShape(reply, 'unauthenticated');
    }
  });
});

describe('the Authorization scheme over HTTP', () => {
  it('is case-insensitive, as HTTP says: bearer and BEARER are Bearer', async () => {
    const token = await tokenFor('alice');
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const res = await fetch(`${current().baseUrl}/v1/access/grants`, { headers: { authorization: `${scheme} ${token}`, 'x-tenant-id': TENANT.id } });
      assert.equal(res.status, 200, `${scheme}: ${await res.text()}`);
    }
  });
});
