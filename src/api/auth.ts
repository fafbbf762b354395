// Bearer JWTs (CONTRACT §4). A token is one tenant's: the one whose issuer, audience, keys and
// required_claims it meets. X-Tenant-ID must name that tenant.
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { z } from 'zod';
import { type AppConfig, type AuthConfig, tenantById, type TenantConfig } from '../config';
import type { Principal } from '../domain/grant';
import { AccessError } from '../domain/errors';
import type { Caller } from '../service/runs';
import { type TokensChecked, tokensChecked } from '../metrics';

/**
 * What identity providers sign access tokens with. No symmetric algorithm: a key that verifies
 * could also sign.
 */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];

/** Text that ends up in workflow ids, search attributes and Cedar: well-formed Unicode only. */
const claimText = z
  .string()
  .max(256)
  .refine((s) => !/\p{Surrogate}/u.test(s), 'not well-formed Unicode (a lone surrogate)');

const claimsSchema = z.object({
  sub: claimText.min(1),
  email: claimText.optional(),
  groups: z.array(claimText).max(500).optional(),
});

const tenantHeaderSchema = z.uuid({ version: undefined });

/**
 * A token that verified is not verified again for this long (nor past its exp or max age): a
 * client sends the same token with every call, and checking its signature was a third of the
 * API's work on a no-change ensure. A key removed from the issuer's JWKS is trusted this much
 * longer for tokens already seen.
 */
const VERIFIED_FOR_MS = 60_000;
/** What the verified-token cache may hold, about (tokens and claims are mostly ASCII: a byte a character). */
export const VERIFIED_BYTES = 16 * 1024 * 1024;

/** GET /v1/tenants/{id}/sign-in: the provider (discovered from its issuer), the public client, what to ask for. */
export interface SignIn {
  tenant_id: string;
  issuer: string;
  client_id: string;
  scopes: string[];
  /** What the API verifies an access token is for. */
  audience: string;
  /** The resource indicator (RFC 8707) to ask tokens for, where the provider takes one. */
  resource: string | null;
}

export class Authenticator {
  /** By tenant id; tenants with one key source share its fetcher (and its cache). */
  private readonly keys = new Map<string, JWTVerifyGetKey>();
  /**
   * Tokens that verified, with their tenant and claims; a token's entry ends with its validity.
   * Bounded in entries and in bytes: a token (and its claims, held twice) can be as large as a header.
   */
  private readonly verified = new LRUCache<string, { tenant: TenantConfig; payload: JWTPayload }>({
    max: 10_000,
    maxSize: VERIFIED_BYTES,
    sizeCalculation: ({ payload }, token) => token.length + JSON.stringify(payload).length,
  });

  constructor(
    private readonly config: AppConfig,
    private readonly checked: TokensChecked = tokensChecked(),
  ) {
    const bySource = new Map<string, JWTVerifyGetKey>();
    for (const tenant of config.tenants) {
      const { jwks_file, jwks_url } = tenant.auth;
      const source = jwks_file ? `file:${jwks_file}` : `url:${jwks_url}`;
      if (!bySource.has(source)) {
        bySource.set(source, jwks_file ? createLocalJWKSet(JSON.parse(readFileSync(jwks_file, 'utf8'))) : createRemoteJWKSet(new URL(jwks_url!)));
      }
      this.keys.set(tenant.id, bySource.get(source)!);
    }
  }

  /**
   * What a client needs to sign in to the tenant with its OpenID Connect provider; undefined for an
   * unknown tenant and for one without `auth.oidc` alike.
   */
  signInOf(tenantId: string): SignIn | undefined {
    const tenant = tenantById(this.config, tenantId);
    if (!tenant?.auth.oidc) return undefined;
    const { issuer, audience, oidc } = tenant.auth;
    return { tenant_id: tenant.id, issuer, client_id: oidc.client_id, scopes: oidc.scopes, audience, resource: oidc.resource ?? null };
  }

  /** The caller of a request, from its Authorization and X-Tenant-ID headers. */
  async authenticate(authorization: string | undefined, tenantHeader: string | undefined): Promise<Caller> {
    // The scheme is case-insensitive in HTTP (RFC 9110 §11.1): `bearer` is Bearer.
    const token = /^Bearer +([A-Za-z0-9_.-]+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw unauthenticated('A bearer token is required (Authorization: Bearer <jwt>).');
    const known = this.verified.get(token);
    if (known) {
      this.checked.inc({ by: 'remembered' });
      return this.callerOf(known.tenant, known.payload, tenantHeader);
    }
    this.checked.inc({ by: 'signature' });
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw unauthenticated('The bearer token is not a well-formed JWT.');
    }
    // Every tenant of the issuer is tried, whichever the header names: the token picks its tenant.
    const owners: { tenant: TenantConfig; payload: JWTPayload }[] = [];
    const failures: unknown[] = [];
    for (const tenant of this.config.tenants.filter((t) => t.auth.issuer === issuer)) {
      try {
        const { payload } = await jwtVerify(token, this.keys.get(tenant.id)!, {
          issuer: tenant.auth.issuer,
          audience: tenant.auth.audience,
          algorithms: ALGORITHMS,
          requiredClaims: ['exp', 'sub'],
          clockTolerance: tenant.auth.clock_tolerance_seconds,
          maxTokenAge: tenant.auth.max_token_age_seconds,
        });
        if (meetsRequiredClaims(payload, tenant.auth.required_claims)) owners.push({ tenant, payload });
        else failures.push(new AccessError('unauthenticated', "The bearer token does not carry the claims of this service's tenants (required_claims)."));
      } catch (err) {
        failures.push(err);
      }
    }
    // The start-up check keeps tenants of one issuer and audience apart; a token whose aud names
    // two audiences of one issuer could still fit two tenants. It is neither's.
    if (owners.length > 1) {
      throw unauthenticated(`The bearer token fits ${owners.length} tenants (its audience or claims name more than one); it is accepted for none.`);
    }
    if (owners.length === 0) throw whyRefused(failures);
    const [{ tenant, payload }] = owners;
    const maxAge = tenant.auth.max_token_age_seconds;
    const validUntil = Math.min(payload.exp! * 1000, maxAge !== undefined && payload.iat !== undefined ? (payload.iat + maxAge) * 1000 : Infinity);
    const ttl = Math.min(VERIFIED_FOR_MS, validUntil - Date.now());
    if (ttl > 0) this.verified.set(token, { tenant, payload }, { ttl });
    return this.callerOf(tenant, payload, tenantHeader);
  }

  private callerOf(tenant: TenantConfig, payload: JWTPayload, tenantHeader: string | undefined): Caller {
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw unauthenticated('The bearer token lacks a valid sub, email or groups claim.');
    const { user_claim: userClaim } = tenant.auth;
    const user = claimText.min(1).safeParse(payload[userClaim]);
    if (!user.success) {
      throw unauthenticated(`The bearer token lacks a valid "${userClaim}" claim, by which this tenant finds its users (auth.user_claim).`);
    }
    const header = tenantHeaderSchema.safeParse(tenantHeader);
    if (!header.success) {
      throw new AccessError('invalid_request', 'X-Tenant-ID must be a tenant UUID.', { details: { issues: header.error.issues } });
    }
    if (header.data.toLowerCase() !== tenant.id) {
      throw new AccessError('tenant_mismatch', 'The credential belongs to a different tenant than X-Tenant-ID names.');
    }
    // Anyone may put any address on an account at some providers; only a verified one names a user.
    if (userClaim === 'email' && isFalse(payload.email_verified)) {
      throw new AccessError('forbidden', 'The token says its email is not verified (email_verified: false); verify the address with your identity provider first.');
    }
    const principal: Principal = { id: claims.data.sub, email: claims.data.email, groups: claims.data.groups ?? [], identityStoreUser: user.data };
    return { tenant, principal, ...(isFalse(payload.email_verified) && { emailUnverified: true }) };
  }
}

/** email_verified: false, as a boolean or (some providers) a string. */
const isFalse = (claim: unknown) => claim === false || claim === 'false';

/** Every listed claim matches: it equals one of the allowed values, or (an array) holds one. */
function meetsRequiredClaims(payload: JWTPayload, required: AuthConfig['required_claims']): boolean {
  return Object.entries(required).every(([name, allowed]) => {
    const values = [allowed].flat();
    const claim = payload[name];
    return (Array.isArray(claim) ? claim : [claim]).some((v) => typeof v === 'string' && values.includes(v));
  });
}

/** The most telling of the reasons each tenant of the issuer refused the token. */
function whyRefused(failures: unknown[]): AccessError {
  for (const err of failures) {
    if (err instanceof joseErrors.JWTExpired) {
      return unauthenticated(err.claim === 'iat' ? 'The bearer token was issued longer ago than this tenant accepts (auth.max_token_age_seconds).' : 'The bearer token has expired.');
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.reason === 'missing') {
      return unauthenticated(`The bearer token lacks the required "${err.claim}" claim.`);
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) {
      return unauthenticated(`The bearer token's algorithm is not accepted; use one of ${ALGORITHMS.join(', ')}.`);
    }
  }
  const claims = failures.find((err) => err instanceof AccessError);
  if (claims instanceof AccessError) return claims;
  return unauthenticated('The bearer token was not issued by a known issuer or its signature does not verify.');
}

function unauthenticated(message: string): AccessError {
  return new AccessError('unauthenticated', message);
}
