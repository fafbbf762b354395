// Bearer JWTs, verified against the keys of the tenant whose issuer signed them (CONTRACT §4).
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors as joseErrors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { z } from 'zod';
import type { AppConfig, TenantConfig } from '../config';
import type { Principal } from '../domain/grant';
import { AccessError } from '../domain/errors';
import type { Caller } from '../service/access';

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  email: z.string().max(256).optional(),
  groups: z.array(z.string().max(256)).max(500).optional(),
});

const tenantHeaderSchema = z.uuid({ version: undefined });

export class Authenticator {
  private readonly keys = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly config: AppConfig) {
    for (const tenant of config.tenants) {
      const { jwks_file, jwks_url } = tenant.auth;
      this.keys.set(tenant.id, jwks_file ? createLocalJWKSet(JSON.parse(readFileSync(jwks_file, 'utf8'))) : createRemoteJWKSet(new URL(jwks_url!)));
    }
  }

  /** The caller of a request, from its Authorization and X-Tenant-ID headers. */
  async authenticate(authorization: string | undefined, tenantHeader: string | undefined): Promise<Caller> {
    const token = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '')?.[1];
    if (!token) throw unauthenticated('A bearer token is required (Authorization: Bearer <jwt>).');
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw unauthenticated('The bearer token is not a well-formed JWT.');
    }
    const wanted = tenantHeader?.toLowerCase();
    // Try the tenant the header names first: several tenants may share an issuer.
    const candidates = this.config.tenants
      .filter((t) => t.auth.issuer === issuer)
      .sort((a, b) => Number(b.id === wanted) - Number(a.id === wanted));
    let lastError: unknown;
    for (const tenant of candidates) {
      try {
        const { payload } = await jwtVerify(token, this.keys.get(tenant.id)!, { issuer: tenant.auth.issuer, audience: tenant.auth.audience });
        return this.callerOf(tenant, payload, tenantHeader);
      } catch (err) {
        if (err instanceof AccessError) throw err;
        lastError = err;
      }
    }
    if (lastError instanceof joseErrors.JWTExpired) throw unauthenticated('The bearer token has expired.');
    throw unauthenticated('The bearer token was not issued by a known issuer or its signature does not verify.');
  }

  private callerOf(tenant: TenantConfig, payload: unknown, tenantHeader: string | undefined): Caller {
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw unauthenticated('The bearer token lacks a valid sub, email or groups claim.');
    const header = tenantHeaderSchema.safeParse(tenantHeader);
    if (!header.success) {
      throw new AccessError('invalid_request', 'X-Tenant-ID must be a tenant UUID.', { details: { issues: header.error.issues } });
    }
    if (header.data.toLowerCase() !== tenant.id) {
      throw new AccessError('tenant_mismatch', 'The credential belongs to a different tenant than X-Tenant-ID names.');
    }
    const principal: Principal = { id: claims.data.sub, email: claims.data.email, groups: claims.data.groups ?? [] };
    return { tenant, principal };
  }
}

function unauthenticated(message: string): AccessError {
  return new AccessError('unauthenticated', message);
}
