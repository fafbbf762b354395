// The console signs people in with their tenant's OpenID Connect provider, by openid-client as the
// CLI does, but as a backend for the browser (OAuth 2.0 for Browser-Based Applications, the BFF
// pattern): the authorization code flow with PKCE runs here, and the tokens stay on the server's
// side of the session cookie.
import * as oidc from 'openid-client';
import type { ConsoleClient } from '../config';
import { isLoopback } from '../net';
import type { SignInTransaction } from './session';

/** Each call to the provider gives up after this. */
const PROVIDER_TIMEOUT_SECONDS = 10;

export interface ConsoleSignIn {
  tenantId: string;
  issuer: string;
  client: ConsoleClient;
  scopes: string[];
  resource: string | null;
}

export interface SignedIn {
  sub: string;
  email: string | null;
  accessToken: string;
  /** Seconds since the epoch. */
  expiresAt: number;
}

export class ConsoleProviders {
  /** Discovery documents by tenant, fetched once (a failed fetch is tried again next time). */
  private readonly configs = new Map<string, Promise<oidc.Configuration>>();

  private async configOf(signIn: ConsoleSignIn): Promise<oidc.Configuration> {
    let config = this.configs.get(signIn.tenantId);
    if (!config) {
      const url = new URL(signIn.issuer);
      const secret = signIn.client.client_secret_env ? process.env[signIn.client.client_secret_env] : undefined;
      const auth = secret ? oidc.ClientSecretBasic(secret) : oidc.None();
      config = oidc.discovery(url, signIn.client.client_id, undefined, auth, {
        timeout: PROVIDER_TIMEOUT_SECONDS,
        ...(url.protocol === 'http:' && isLoopback(url.hostname) && { execute: [oidc.allowInsecureRequests] }),
      });
      this.configs.set(signIn.tenantId, config);
      config.catch(() => this.configs.delete(signIn.tenantId));
    }
    return config;
  }

  /** Where to send the person, and what to remember until they come back. */
  async start(signIn: ConsoleSignIn, redirectUri: string, returnTo: string): Promise<{ url: URL; transaction: SignInTransaction }> {
    const config = await this.configOf(signIn);
    const transaction: SignInTransaction = { tenantId: signIn.tenantId, state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier: oidc.randomPKCECodeVerifier(), returnTo };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      // No refresh token: the session lasts as long as its access token, and nothing longer-lived is held.
      scope: signIn.scopes.filter((s) => s !== 'offline_access').join(' '),
      state: transaction.state,
      nonce: transaction.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(transaction.codeVerifier),
      code_challenge_method: 'S256',
      ...(signIn.resource && { resource: signIn.resource }),
    });
    return { url, transaction };
  }

  /** The provider's answer at the callback, checked against the transaction, for tokens. */
  async finish(signIn: ConsoleSignIn, callbackUrl: URL, transaction: SignInTransaction): Promise<SignedIn> {
    const config = await this.configOf(signIn);
    const tokens = await oidc.authorizationCodeGrant(
      config,
      callbackUrl,
      { pkceCodeVerifier: transaction.codeVerifier, expectedState: transaction.state, expectedNonce: transaction.nonce, idTokenExpected: true },
      signIn.resource ? { resource: signIn.resource } : undefined,
    );
    const claims = tokens.claims()!;
    return {
      sub: claims.sub,
      email: typeof claims.email === 'string' ? claims.email : null,
      accessToken: tokens.access_token,
      expiresAt: Math.floor(Date.now() / 1000) + (tokens.expiresIn() ?? 300),
    };
  }

  /**
   * The provider's own sign-out page (RP-initiated logout), where it has one: the console's session
   * is ended either way; this ends the person's session at the provider too, for a shared computer.
   */
  async endSessionUrl(signIn: ConsoleSignIn): Promise<URL | undefined> {
    try {
      const config = await this.configOf(signIn);
      if (!config.serverMetadata().end_session_endpoint) return undefined;
      return oidc.buildEndSessionUrl(config, { client_id: signIn.client.client_id });
    } catch {
      return undefined; // the provider unreachable: the console's own session is ended all the same
    }
  }

  /** The OAuth error code of a refused sign-in (e.g. access_denied), the one part shown to the person. */
  static oauthError(err: unknown): string | undefined {
    return err instanceof oidc.ResponseBodyError || err instanceof oidc.AuthorizationResponseError ? err.error : undefined;
  }

  /** Why a sign-in failed, for the log (never a token). */
  static reason(err: unknown): string {
    if (err instanceof oidc.ResponseBodyError || err instanceof oidc.AuthorizationResponseError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`;
    return (err as Error).message;
  }
}
