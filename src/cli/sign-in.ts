// `access login`: OpenID Connect with the tenant's provider, by openid-client. Authorization code
// with PKCE on a loopback redirect (RFC 8252), or the device grant (RFC 8628); tokens refreshed
// before they expire. The API says which provider, client and scopes (GET /v1/tenants/{id}/sign-in).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import type { SignIn } from '../api/auth';
import { signInSchema } from '../api/schemas';
import { httpsOrLoopback } from '../net';
import { ApiError } from './api';
import { type Profile, type Tokens, readProfile, withProfilesLock, writeProfile } from './profiles';

/** A token this close to its end is refreshed before it is sent. */
const REFRESH_MARGIN_SECONDS = 60;
const PROVIDER_TIMEOUT_SECONDS = 10;

/** The tenant's sign-in settings, from the API, which must be the tenant's own answer. */
export async function signInOf(url: string, tenant: string): Promise<SignIn> {
  requireSafeUrl(url);
  const at = `${url.replace(/\/+$/, '')}/v1/tenants/${encodeURIComponent(tenant)}/sign-in`;
  let res: Response;
  try {
    res = await fetch(at, { signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new ApiError(0, { code: 'unavailable', message: `Cannot reach ${url}: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}` });
  }
  const body = (await res.json().catch(() => undefined)) as unknown;
  if (!res.ok) {
    const error = body as ApiError['body'] | undefined;
    throw new ApiError(res.status, typeof error?.code === 'string' && typeof error.message === 'string' ? error : { code: 'unavailable', message: `HTTP ${res.status} from ${at}` });
  }
  const signIn = signInSchema.safeParse(body);
  if (!signIn.success || signIn.data.tenant_id.toLowerCase() !== tenant.toLowerCase()) {
    throw new ApiError(0, { code: 'unavailable', message: `${url} did not answer how to sign in to tenant ${tenant}: is it the access API?` });
  }
  return signIn.data;
}

/** A bearer token goes over https, or plain http to this machine only. */
export function requireSafeUrl(url: string): void {
  let safe: boolean;
  try {
    safe = httpsOrLoopback(url);
  } catch {
    throw new ApiError(400, { code: 'invalid_request', message: `--url ${url} is not a URL.` });
  }
  if (!safe) throw new ApiError(400, { code: 'invalid_request', message: `--url ${url}: tokens are sent over https only (plain http only to this machine).` });
}

/** The provider, from its discovery document; plain http only on loopback (a local provider). */
async function providerOf(issuer: string, clientId: string): Promise<oidc.Configuration> {
  const url = new URL(issuer);
  const loopback = url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  try {
    // 10 s for each call to the provider: a refresh holds the profiles' lock meanwhile.
    return await oidc.discovery(url, clientId, undefined, oidc.None(), { timeout: PROVIDER_TIMEOUT_SECONDS, ...(loopback && { execute: [oidc.allowInsecureRequests] }) });
  } catch (err) {
    throw new ApiError(0, { code: 'unavailable', message: `Cannot reach the identity provider ${issuer}: ${reason(err)}` });
  }
}

function reason(err: unknown): string {
  if (err instanceof oidc.ResponseBodyError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`;
  const cause = (err as { cause?: unknown }).cause;
  return `${(err as Error).message}${cause instanceof Error ? ` (${cause.message})` : ''}`;
}

/** The `resource` parameter (RFC 8707), for a provider that picks the token's audience by it. */
function resourceOf({ resource }: { resource?: string | null }): Record<string, string> {
  return resource ? { resource } : {};
}

/** What the API takes: the access token, a JWT for its audience. */
function tokensOf(response: oidc.TokenEndpointResponse, signIn: Pick<SignIn, 'audience' | 'issuer'>, previous?: Tokens): Tokens {
  let claims;
  try {
    claims = decodeJwt(response.access_token);
  } catch {
    throw new ApiError(401, {
      code: 'unauthenticated',
      message: `${signIn.issuer} gave an access token that is not a JWT; the provider must issue JWT access tokens for the API (${signIn.audience}), see docs/configuration.md.`,
    });
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(signIn.audience)) {
    throw new ApiError(401, { code: 'unauthenticated', message: `${signIn.issuer} gave an access token for ${audiences.join(', ')}, not for the API (${signIn.audience}).` });
  }
  const expiresAt = claims.exp ?? Math.floor(Date.now() / 1000) + (response.expires_in ?? 300);
  return { access_token: response.access_token, refresh_token: response.refresh_token ?? previous?.refresh_token, expires_at: expiresAt };
}

function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(command, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => undefined); // no browser here: the printed address is enough
  child.unref();
}

export interface BrowserSignInOptions {
  /** Opens the address in the default browser (else only `show` sees it). */
  open: boolean;
  /** Told the address to visit. */
  show(url: string): void;
  timeoutMs: number;
}

/** Authorization code with PKCE: the person signs in in a browser, which comes back to a loopback port. */
export async function signInWithBrowser(signIn: SignIn, opts: BrowserSignInOptions): Promise<Tokens> {
  const config = await providerOf(signIn.issuer, signIn.client_id);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  let settle!: { resolve: (t: Tokens) => void; reject: (e: unknown) => void };
  const done = new Promise<Tokens>((resolve, reject) => (settle = { resolve, reject }));
  let taken = false;
  const server = createServer((req, res) => {
    // Only this sign-in's answer counts: another request (a page probing loopback ports, a forged
    // state) is turned away and the sign-in goes on waiting.
    const query = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
    if (!req.url?.startsWith('/callback?') || query.get('state') !== state || taken) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('Not an answer to this sign-in.\n');
      return;
    }
    taken = true;
    oidc
      .authorizationCodeGrant(config, new URL(`${redirectUri}?${query}`), { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true }, resourceOf(signIn))
      .then((response) => {
        const tokens = tokensOf(response, signIn);
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('Signed in. You can close this tab and go back to the terminal.\n');
        settle.resolve(tokens);
      })
      .catch((err: unknown) => {
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('Sign-in failed; see the terminal.\n');
        settle.reject(err instanceof ApiError ? err : new ApiError(401, { code: 'unauthenticated', message: `Sign-in refused: ${reason(err)}` }));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: signIn.scopes.join(' '),
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...resourceOf(signIn),
  });
  opts.show(url.href);
  if (opts.open) openBrowser(url.href);
  const timer = setTimeout(
    () => settle.reject(new ApiError(401, { code: 'unauthenticated', message: `No sign-in within ${Math.round(opts.timeoutMs / 1000)} s.` })),
    opts.timeoutMs,
  );
  try {
    return await done;
  } finally {
    clearTimeout(timer);
    server.close();
    server.closeAllConnections();
  }
}

/** The device grant: the person signs in on another device with a short code. */
export async function signInWithDevice(
  signIn: SignIn,
  opts: { show: (verificationUri: string, userCode: string, complete?: string) => void; timeoutMs: number },
): Promise<Tokens> {
  const config = await providerOf(signIn.issuer, signIn.client_id);
  try {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: signIn.scopes.join(' '), ...resourceOf(signIn) });
    opts.show(device.verification_uri, device.user_code, device.verification_uri_complete);
    const response = await oidc.pollDeviceAuthorizationGrant(config, device, resourceOf(signIn), { signal: AbortSignal.timeout(opts.timeoutMs) });
    return tokensOf(response, signIn);
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(401, { code: 'unauthenticated', message: `Sign-in refused: ${reason(err)}` });
  }
}

/**
 * The profile's access token, refreshed first when it ends within a minute. A refresh the provider
 * refuses (the session ended or was revoked) forgets the tokens and says to sign in again.
 */
export async function accessTokenOf(profileName: string, profile: Profile): Promise<string | undefined> {
  if (!profile.tokens) return undefined;
  if (profile.tokens.expires_at - Date.now() / 1000 > REFRESH_MARGIN_SECONDS) return profile.tokens.access_token;
  return withProfilesLock(async () => {
    // Another command may have refreshed it while this one waited for the lock.
    const latest = readProfile(profileName);
    const tokens = latest?.tokens;
    if (!latest || !tokens) return undefined;
    if (tokens.expires_at - Date.now() / 1000 > REFRESH_MARGIN_SECONDS) return tokens.access_token;
    const again = `sign in again: access login${profileName === 'default' ? '' : ` --profile ${profileName}`}`;
    if (!tokens.refresh_token) {
      throw new ApiError(401, { code: 'unauthenticated', message: `Your sign-in to ${latest.issuer} has expired and cannot be renewed; ${again}.` });
    }
    const config = await providerOf(latest.issuer, latest.client_id);
    let fresh: Tokens;
    try {
      fresh = tokensOf(await oidc.refreshTokenGrant(config, tokens.refresh_token, resourceOf(latest)), latest, tokens);
    } catch (err) {
      // Only invalid_grant says the session is over; anything else (the provider down, busy) may pass.
      const ended = err instanceof ApiError || (err instanceof oidc.ResponseBodyError && err.error === 'invalid_grant');
      if (!ended) throw new ApiError(0, { code: 'unavailable', message: `Cannot renew the sign-in with ${latest.issuer}: ${reason(err)}` });
      // The refresh token is spent or refused either way: keeping it would only fail again.
      writeProfile(profileName, { ...latest, tokens: undefined });
      if (err instanceof ApiError) throw err;
      throw new ApiError(401, { code: 'unauthenticated', message: `Your session with ${latest.issuer} has ended (${reason(err)}); ${again}.` });
    }
    writeProfile(profileName, { ...latest, tokens: fresh });
    return fresh.access_token;
  });
}

/** Tells the provider the refresh token is no longer wanted (best effort: forgetting it is what counts). */
export async function revokeAtProvider(profile: Profile): Promise<boolean> {
  if (!profile.tokens?.refresh_token) return false;
  try {
    await oidc.tokenRevocation(await providerOf(profile.issuer, profile.client_id), profile.tokens.refresh_token, { token_type_hint: 'refresh_token' });
    return true;
  } catch {
    return false;
  }
}
