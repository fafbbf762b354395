// A real OpenID Connect provider on loopback for `npm run dev` and the tests (oidc-provider): the
// sign-in a tenant's own provider (Okta, Entra ID, Google, Keycloak) gives people, with the dev
// people and their groups. Its access tokens are JWTs for the API's audience, signed with the
// tenant's key, so the API verifies them exactly as any other token (issuer, audience, JWKS URL,
// claims). Development only: its sign-in page takes a person's login name and no password.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import Provider, { type Configuration, errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

export interface Person {
  /** The login name typed on the sign-in page; also the token's `sub`. */
  login: string;
  email: string;
  groups: string[];
}

export interface IdentityProviderOptions {
  /** Loopback port; default a free one. */
  port?: number;
  /** The private signing key (its `kid`, `alg` and `d`): the tenant's, so its JWKS is the tenant's. */
  signingKey: JWK;
  /** The API's audience (`auth.audience`): the resource every access token is for, an absolute URI (RFC 8707). */
  audience: string;
  people: Person[];
  /** The public client the CLI signs in as. */
  clientId?: string;
  /** How long an access token lasts; default 10 minutes. */
  accessTokenSeconds?: number;
  /**
   * The web console's client (confidential: it signs in with its secret), whose redirect is the
   * console's callback on loopback at any port (RFC 8252 §7.3): `http://127.0.0.1/t/{tenant}/callback`.
   */
  console?: { clientId: string; clientSecret: string; redirectUris: string[] };
}

export interface IdentityProvider {
  /** http://127.0.0.1:port: the issuer, and the base of every endpoint. */
  issuer: string;
  jwksUrl: string;
  clientId: string;
  /** What the CLI asks for: OpenID, email, groups, a refresh token, and the API. */
  scopes: string[];
  stop(): Promise<void>;
}

/** The scope of the API's resource: what an access token for the API carries. */
const API_SCOPE = 'access';
export const SIGN_IN_SCOPES = ['openid', 'email', 'groups', 'offline_access', API_SCOPE];

export async function startIdentityProvider(opts: IdentityProviderOptions): Promise<IdentityProvider> {
  const clientId = opts.clientId ?? 'access-cli';
  const people = new Map(opts.people.map((p) => [p.login, p]));
  // The port first: the issuer names it.
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(opts.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claimsOf = (p: Person) => ({ sub: p.login, email: p.email, email_verified: true, groups: p.groups });
  // A native client is asked to confirm on every sign-in (its loopback redirect does not prove who it
  // is). The console is registered native here only to take any loopback port, and is the service's
  // own web app: it is not asked.
  const policy = interactionPolicy.base();
  const nativePrompt = policy.get('consent')!.checks.get('native_client_prompt')!;
  const promptsNative = nativePrompt.check;
  nativePrompt.check = (ctx) => (opts.console && ctx.oidc.client?.clientId === opts.console.clientId ? interactionPolicy.Check.NO_NEED_TO_PROMPT : promptsNative(ctx));
  const configuration: Configuration = {
    interactions: { policy },
    clients: [
      ...(opts.console
        ? [
            {
              client_id: opts.console.clientId,
              client_secret: opts.console.clientSecret,
              application_type: 'native' as const, // loopback at any port, as the API's port is chosen at start
              token_endpoint_auth_method: 'client_secret_basic' as const,
              grant_types: ['authorization_code'],
              response_types: ['code' as const],
              redirect_uris: opts.console.redirectUris,
              id_token_signed_response_alg: opts.signingKey.alg as 'ES256',
            },
          ]
        : []),
      {
        client_id: clientId,
        application_type: 'native', // a loopback redirect on any port (RFC 8252 §7.3)
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        id_token_signed_response_alg: opts.signingKey.alg as 'ES256',
      },
    ],
    jwks: { keys: [opts.signingKey as never] },
    findAccount: async (_ctx, id) => {
      const person = people.get(id);
      return person && { accountId: id, claims: async () => claimsOf(person) };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'offline_access', 'email', 'groups'],
    // What the API reads from a token: the same claims as the ID token's.
    extraTokenClaims: async (_ctx, token) => {
      const person = 'accountId' in token && typeof token.accountId === 'string' ? people.get(token.accountId) : undefined;
      if (!person || token.kind !== 'AccessToken') return undefined;
      const { sub: _sub, ...claims } = claimsOf(person);
      return claims;
    },
    // The CLI and the console are the service's own clients: signing in is the consent, as with a company's SSO.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx;
      const known = oidc.result?.consent?.grantId ?? oidc.session!.grantIdFor(oidc.client!.clientId);
      if (known) return oidc.provider.Grant.find(known);
      const grant = new oidc.provider.Grant({ clientId: oidc.client!.clientId, accountId: oidc.session!.accountId });
      grant.addOIDCScope('openid email groups offline_access');
      grant.addOIDCClaims(['email', 'email_verified', 'groups']);
      grant.addResourceScope(opts.audience, API_SCOPE);
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => opts.audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== opts.audience) throw new errors.InvalidTarget();
          return { scope: API_SCOPE, audience: opts.audience, accessTokenFormat: 'jwt', accessTokenTTL: opts.accessTokenSeconds ?? 600, jwt: { sign: { alg: opts.signingKey.alg as 'ES256' } } };
        },
      },
    },
    pkce: { required: () => true },
    // The CLI always gets a refresh token (OpenID Connect grants offline_access only with a consent
    // prompt, and signing in is the consent here). They rotate: a used one is refused.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: { RefreshToken: 14 * 86_400, DeviceCode: 600, Interaction: 600, Session: 86_400, Grant: 14 * 86_400 },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
  };
  const provider = new Provider(issuer, configuration);
  server.on('request', provider.callback());
  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    clientId,
    scopes: SIGN_IN_SCOPES,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
