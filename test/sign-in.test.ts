// Sign-in (issue 37 §1, §2): `access login` against a real OpenID Connect provider on loopback
// (oidc-provider, scripts/identity-provider.ts): authorization code with PKCE on a loopback
// redirect, the device grant, refresh before expiry, a revoked session, a tampered state or PKCE
// challenge, two profiles; and the API's sign-in discovery route. The CLI runs for real, with a
// profiles folder of its own and no token in its environment.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { connectApi, createApi } from '../src/api/server';
import { loadConfig } from '../src/config';
import { SIGN_IN_LOOKUPS_BURST, SIGN_IN_MISSES_BURST } from '../src/service/rate-limit';
import { type IdentityProvider, startIdentityProvider } from '../scripts/identity-provider';
import { repoRoot } from '../scripts/stack';
import { BIN, type Run, show } from './support/cli';
import { SignInBrowser } from './support/sign-in-browser';
import { assertErrorShape, current, USERS } from './support/world';

const TENANT = { id: '51917000-0000-4000-8000-0000000051a1', name: 'sign-in' };
const AUDIENCE = 'urn:jit-access:api';

describe('signing in with the tenant identity provider', function () {
  this.timeout(120_000);
  let idp: IdentityProvider;
  let api: Server;
  let apiUrl: string;
  let connection: ReturnType<typeof connectApi>;
  let home: string;
  let configFile: string;

  before(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'access-sign-in-'));
    const pair = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(pair.privateKey);
    const signingKey = { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES256', use: 'sig' };
    const people = [USERS.alice, USERS.carol].map((u) => ({ login: u.sub, email: u.email, groups: u.groups }));
    idp = await startIdentityProvider({ signingKey, audience: AUDIENCE, people });
    configFile = path.join(dir, 'access.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        tenants: [
          {
            ...TENANT,
            auth: { issuer: idp.issuer, audience: AUDIENCE, jwks_url: idp.jwksUrl, oidc: { client_id: idp.clientId, scopes: idp.scopes, resource: AUDIENCE } },
            aws: { region: 'us-east-1', sso_instance_arn: current().stack.instanceArn, identity_store_id: current().stack.identityStoreId },
            policies: path.join(repoRoot, 'policies'),
          },
        ],
      }),
    );
    connection = connectApi(current().stack.temporalAddress);
    api = await new Promise((resolve) => {
      const s = createApi(loadConfig(configFile), connection).listen(0, '127.0.0.1', () => resolve(s));
    });
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => api?.close(resolve));
    await connection?.close();
    await idp?.stop();
  });
  // Each test signs in from a machine of its own: its own profiles file.
  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'access-sign-in-home-'));
  });

  const profilesFile = () => path.join(home, 'access', 'profiles.json');
  const profiles = () => JSON.parse(readFileSync(profilesFile(), 'utf8')).profiles;

  /** `access <args>` as a person at a terminal: no token, URL or tenant in the environment. */
  function startAccess(args: string[], env: Record<string, string> = {}): { child: ChildProcess; stderrMatching(re: RegExp): Promise<RegExpExecArray>; done: Promise<Run> } {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const done = new Promise<Run>((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })));
    const stderrMatching = async (re: RegExp) => {
      for (let waited = 0; waited < 30_000; waited += 100) {
        const match = re.exec(stderr);
        if (match) return match;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the CLI never printed ${re}: ${stderr}`);
    };
    return { child, stderrMatching, done };
  }
  const access = (args: string[], env: Record<string, string> = {}) => startAccess(args, env).done;

  /** `access login` in the browser's way: the address the CLI prints, signed in at the provider as `login`. */
  async function loginWithBrowser(login: string, extra: string[] = []): Promise<Run> {
    const run = startAccess(['login', '--url', apiUrl, '--tenant', TENANT.id, '--no-browser', ...extra]);
    const [, address] = await run.stderrMatching(/^ {2}(http\S+)$/m);
    const page = await new SignInBrowser().signIn(address, login);
    assert.match(page.body, /Signed in/, 'the loopback page says so');
    return run.done;
  }

  /** An API of its own (its own rate buckets), for `use`. */
  async function withOwnApi(use: (url: string) => Promise<void>): Promise<void> {
    const own: Server = await new Promise((resolve) => {
      const s = createApi(loadConfig(configFile), connection).listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      await use(`http://127.0.0.1:${(own.address() as AddressInfo).port}`);
    } finally {
      await new Promise((resolve) => own.close(resolve));
    }
  }

  /** How many lookups of `ids` (in turn) until one is 429, or undefined. */
  async function lookupsUntilLimited(url: string, ids: (i: number) => string, most: number): Promise<number | undefined> {
    for (let i = 1; i <= most; i++) {
      const r = await fetch(`${url}/v1/tenants/${ids(i)}/sign-in`);
      if (r.status === 429) {
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
        assertErrorShape({ body: await r.json() }, 'rate_limited');
        return i;
      }
      await r.arrayBuffer();
    }
    return undefined;
  }

  it('the API tells a client how to sign in to a tenant, without a token; an unknown tenant is 404', async () => {
    await withOwnApi(async (url) => {
      const res = await fetch(`${url}/v1/tenants/${TENANT.id.toUpperCase()}/sign-in`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { tenant_id: TENANT.id, issuer: idp.issuer, client_id: idp.clientId, scopes: idp.scopes, audience: AUDIENCE, resource: AUDIENCE });
      for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
        const unknown = await fetch(`${url}/v1/tenants/${id}/sign-in`);
        assert.equal(unknown.status, 404);
        assertErrorShape({ body: await unknown.json() }, 'not_found');
      }
    });
  });

  it(`trying tenant ids is slow: ${SIGN_IN_MISSES_BURST} lookups that find nothing from one address, whatever the ids, then 429; lookups that find the tenant, ${SIGN_IN_LOOKUPS_BURST}`, async () => {
    await withOwnApi(async (url) => {
      const unknownId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const limitedAt = await lookupsUntilLimited(url, unknownId, 100);
      // Half a lookup a second comes back meanwhile.
      assert.ok(limitedAt !== undefined && limitedAt > SIGN_IN_MISSES_BURST && limitedAt <= SIGN_IN_MISSES_BURST + 2, `limited by address, not by id: at lookup ${limitedAt}`);
    });
    await withOwnApi(async (url) => {
      const limitedAt = await lookupsUntilLimited(url, () => TENANT.id, 200);
      // 2 a second come back meanwhile: a slow machine may squeeze in one or two more.
      assert.ok(limitedAt !== undefined && limitedAt > SIGN_IN_LOOKUPS_BURST && limitedAt <= SIGN_IN_LOOKUPS_BURST + 5, `limited at lookup ${limitedAt}`);
    });
  });

  it('access login signs in with a browser (PKCE, loopback redirect); every command then uses the saved profile', async () => {
    const login = await loginWithBrowser('alice');
    assert.equal(login.code, 0, show(login));
    assert.match(login.stdout, new RegExp(`Signed in to ${apiUrl} \\(tenant ${TENANT.id}\\) as alice@example.com`), show(login));
    assert.equal(statSync(profilesFile()).mode & 0o777, 0o600, 'readable by its owner only');
    assert.equal(statSync(path.dirname(profilesFile())).mode & 0o777, 0o700);

    const whoami = await access(['whoami']);
    assert.equal(whoami.code, 0, show(whoami));
    assert.match(whoami.stdout, new RegExp(`^tenant +${TENANT.id} at ${apiUrl}$`, 'm'));
    assert.match(whoami.stdout, /^principal +alice \(alice@example\.com\)$/m);
    assert.match(whoami.stdout, /^groups +engineering$/m);
    assert.match(whoami.stdout, /^session +token expires \S+; renewed from/m);

    // The API verified the provider's token as any other: policy decides for alice of engineering.
    const dryRun = await access(['ensure', '--target', '123456789012', '--role', 'ReadOnlyAccess', '--dry-run']);
    assert.equal(dryRun.code, 0, show(dryRun));
    assert.match(dryRun.stdout, /^WILL ACTIVATE +ReadOnlyAccess on AWS::Account::123456789012/m, show(dryRun));
    const listed = await access(['grants']);
    assert.equal(listed.code, 0, show(listed));
  });

  it('access login --device signs in with a code on another device; two profiles are two people', async () => {
    assert.equal((await loginWithBrowser('alice')).code, 0);
    const run = startAccess(['login', '--device', '--profile', 'review', '--url', apiUrl, '--tenant', TENANT.id]);
    const [, uri, code] = await run.stderrMatching(/visit (\S+) and enter the code (\S+)/);
    const [, complete] = await run.stderrMatching(/\(or open (\S+)\)/);
    assert.ok(complete.startsWith(uri) && complete.includes(encodeURIComponent(code).slice(0, 4)), complete);
    const page = await new SignInBrowser().signIn(complete, 'carol');
    assert.equal(page.status, 200, page.body);
    const login = await run.done;
    assert.equal(login.code, 0, show(login));
    assert.match(login.stdout, /as carol@example\.com, profile review\./);

    assert.match((await access(['whoami'])).stdout, /^principal +alice /m, 'the default profile is still alice');
    const carol = await access(['whoami', '--profile', 'review']);
    assert.match(carol.stdout, /^principal +carol \(carol@example\.com\)$/m, show(carol));
    assert.match(carol.stdout, /^groups +platform-admins$/m);
    assert.deepEqual(Object.keys(profiles()).sort(), ['default', 'review']);
    const missing = await access(['whoami', '--profile', 'nobody']);
    assert.equal(missing.code, 1, show(missing));
    assert.match(missing.stderr, /No profile "nobody"/);
  });

  it('a token about to expire is refreshed before the call, with a new refresh token; the old one no longer works', async () => {
    assert.equal((await loginWithBrowser('alice')).code, 0);
    const before = profiles().default.tokens;
    // As if the token were a minute from its end.
    const all = JSON.parse(readFileSync(profilesFile(), 'utf8'));
    all.profiles.default.tokens.expires_at = Math.floor(Date.now() / 1000) + 30;
    writeFileSync(profilesFile(), JSON.stringify(all), { mode: 0o600 });

    const listed = await access(['grants']);
    assert.equal(listed.code, 0, show(listed));
    const after = profiles().default.tokens;
    assert.notEqual(after.access_token, before.access_token, 'a new access token');
    assert.notEqual(after.refresh_token, before.refresh_token, 'the provider rotated the refresh token');
    assert.ok(after.expires_at > Date.now() / 1000 + 60);
    // The spent refresh token is refused by the provider.
    const reuse = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: before.refresh_token, client_id: idp.clientId }),
    });
    assert.equal(reuse.status, 400);
    assert.equal(((await reuse.json()) as { error: string }).error, 'invalid_grant');
  });

  it('a session the provider ended is a clear message and exit code 4; the tokens are forgotten, the API and tenant kept', async () => {
    assert.equal((await loginWithBrowser('alice')).code, 0);
    const { refresh_token } = profiles().default.tokens;
    const revoked = await fetch(`${idp.issuer}/token/revocation`, { method: 'POST', body: new URLSearchParams({ token: refresh_token, client_id: idp.clientId }) });
    assert.equal(revoked.status, 200);
    const all = JSON.parse(readFileSync(profilesFile(), 'utf8'));
    all.profiles.default.tokens.expires_at = Math.floor(Date.now() / 1000) - 1;
    writeFileSync(profilesFile(), JSON.stringify(all), { mode: 0o600 });

    const listed = await access(['grants']);
    assert.equal(listed.code, 4, show(listed));
    assert.match(listed.stderr, new RegExp(`Your session with ${idp.issuer} has ended \\(invalid_grant.*\\); sign in again: access login`), show(listed));
    assert.equal(profiles().default.tokens, undefined);
    assert.equal((await access(['grants'])).code, 4, 'still not signed in');
    // Signing in again needs neither --url nor --tenant.
    const again = startAccess(['login', '--no-browser']);
    const [, address] = await again.stderrMatching(/^ {2}(http\S+)$/m);
    await new SignInBrowser().signIn(address, 'alice');
    assert.equal((await again.done).code, 0);
    assert.equal((await access(['grants'])).code, 0);
  });

  it('access logout revokes the session at the provider and forgets the tokens', async () => {
    assert.equal((await loginWithBrowser('alice')).code, 0);
    const { refresh_token } = profiles().default.tokens;
    const logout = await access(['logout']);
    assert.equal(logout.code, 0, show(logout));
    assert.match(logout.stdout, new RegExp(`Signed out; ${idp.issuer} revoked the session\\.`));
    assert.equal(profiles().default.tokens, undefined);
    assert.equal(profiles().default.tenant, TENANT.id);
    const reuse = await fetch(`${idp.issuer}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token, client_id: idp.clientId }) });
    assert.equal(reuse.status, 400, 'the refresh token no longer works');
  });

  it('an answer with another state is turned away and the sign-in goes on waiting for its own', async () => {
    const run = startAccess(['login', '--url', apiUrl, '--tenant', TENANT.id, '--no-browser']);
    const [, address] = await run.stderrMatching(/^ {2}(http\S+)$/m);
    const callback = (await new SignInBrowser().signIn(address, 'alice', (u) => u.pathname === '/callback')).url;
    assert.ok(callback.searchParams.get('code'), callback.href);
    const forged = new URL(callback);
    forged.searchParams.set('state', 'forged');
    const refused = await fetch(forged);
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /Not an answer to this sign-in/);
    assert.throws(() => readFileSync(profilesFile()), /ENOENT/, 'nothing saved');
    // A page probing the port cannot end the sign-in either; the real answer still signs in.
    assert.equal((await fetch(new URL('/', callback))).status, 400);
    const answer = await fetch(callback);
    assert.equal(answer.status, 200);
    const login = await run.done;
    assert.equal(login.code, 0, show(login));
    const again = await fetch(callback).then((r) => r.status, () => 'closed');
    assert.equal(again, 'closed', 'the one-time port is closed once signed in');
  });

  it("the profile's token goes to the profile's API only, and over https or to this machine only; a lookup for another tenant is refused", async () => {
    assert.equal((await loginWithBrowser('alice')).code, 0);
    const seen: (string | undefined)[] = [];
    const other: Server = await new Promise((resolve) => {
      const s = createServer((req, res) => {
        seen.push(req.headers.authorization);
        // Answers as if it were the tenant's API, for another tenant.
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tenant_id: '00000000-0000-4000-8000-000000000001', issuer: idp.issuer, client_id: 'x', scopes: ['openid'], audience: 'x', resource: null, grants: [] }));
      }).listen(0, '127.0.0.1', () => resolve(s));
    });
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      const elsewhere = await access(['grants'], { ACCESS_URL: otherUrl });
      assert.equal(elsewhere.code, 4, show(elsewhere));
      assert.match(elsewhere.stderr, /profile is signed in to .*, not http:\/\/127\.0\.0\.1/);
      const lookup = await access(['login', '--url', otherUrl, '--tenant', TENANT.id, '--profile', 'other', '--no-browser']);
      assert.equal(lookup.code, 5, show(lookup));
      assert.match(lookup.stderr, /did not answer how to sign in to tenant/);
      assert.deepEqual(seen, [undefined], 'no token was sent there');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
    const plain = await access(['grants', '--url', 'http://access.example.com']);
    assert.equal(plain.code, 1, show(plain));
    assert.match(plain.stderr, /tokens are sent over https only/);
  });

  it("a code obtained with another PKCE challenge is refused at the token exchange (an attacker's code cannot be planted)", async () => {
    const run = startAccess(['login', '--url', apiUrl, '--tenant', TENANT.id, '--no-browser']);
    const [, address] = await run.stderrMatching(/^ {2}(http\S+)$/m);
    const forged = new URL(address);
    assert.equal(forged.searchParams.get('code_challenge_method'), 'S256');
    // The attacker's own challenge (for a verifier only the attacker knows), on the CLI's redirect and state.
    forged.searchParams.set('code_challenge', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
    const callback = (await new SignInBrowser().signIn(forged.href, 'alice', (u) => u.pathname === '/callback')).url;
    assert.ok(callback.searchParams.get('code'), callback.href);
    await fetch(callback);
    const login = await run.done;
    assert.equal(login.code, 4, show(login));
    assert.match(login.stderr, /Sign-in refused: invalid_grant/, show(login));
    assert.throws(() => readFileSync(profilesFile()), /ENOENT/, 'nothing saved');
  });
});
