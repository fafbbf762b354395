// The console's cookies: sealed (encrypted and authenticated) with the deployment's key, so any
// API process behind a load balancer can read them and the page can read none of them. The session
// holds the person's access token, which never reaches the page in any other way; it ends when
// that token does (the provider's own session makes signing in again two redirects, no typing).
import { randomBytes } from 'node:crypto';
import { EncryptJWT, jwtDecrypt } from 'jose';

export interface ConsoleSession {
  tenantId: string;
  /** The principal id (the token's `sub`). */
  sub: string;
  email: string | null;
  accessToken: string;
  /** The value every state-changing request must carry (form field or X-CSRF-Token header). */
  csrf: string;
  /** The session's id: what sign-out marks as ended. */
  sid: string;
  /** Seconds since the epoch: the access token's expiry. */
  expiresAt: number;
}

/** A sign-in under way, from the redirect to the provider until its answer comes back. */
export interface SignInTransaction {
  tenantId: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  /** A path of the console to go back to once signed in. */
  returnTo: string;
}

type Purpose = 'session' | 'sign-in';

export class CookieSeal {
  private readonly key: Uint8Array;

  /** `key`: 32 bytes, base64url (CONSOLE_SESSION_KEY); every API process of a deployment has the same. */
  constructor(key: string) {
    this.key = Buffer.from(key, 'base64url');
    if (this.key.length !== 32) throw new Error('CONSOLE_SESSION_KEY must be 32 bytes, base64url-encoded (e.g. openssl rand -base64 32 | tr "+/" "-_" | tr -d =)');
  }

  static randomKey(): string {
    return randomBytes(32).toString('base64url');
  }

  seal(purpose: 'session', value: ConsoleSession): Promise<string>;
  seal(purpose: 'sign-in', value: SignInTransaction, expiresAt: number): Promise<string>;
  async seal(purpose: Purpose, value: ConsoleSession | SignInTransaction, expiresAt?: number): Promise<string> {
    const exp = 'expiresAt' in value ? value.expiresAt : expiresAt!;
    return new EncryptJWT({ v: value })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .setAudience(purpose)
      .setExpirationTime(exp)
      .encrypt(this.key);
  }

  open(purpose: 'session', sealed: string | undefined, tenantId: string): Promise<ConsoleSession | undefined>;
  open(purpose: 'sign-in', sealed: string | undefined, tenantId: string): Promise<SignInTransaction | undefined>;
  async open(purpose: Purpose, sealed: string | undefined, tenantId: string): Promise<ConsoleSession | SignInTransaction | undefined> {
    if (!sealed) return undefined;
    try {
      const { payload } = await jwtDecrypt<{ v: ConsoleSession | SignInTransaction }>(sealed, this.key, { audience: purpose, keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
      // A cookie of another tenant's console (its path keeps it apart; this is the lock behind that).
      return payload.v?.tenantId === tenantId ? payload.v : undefined;
    } catch {
      return undefined; // expired, tampered with, or sealed with another key: not a session
    }
  }
}

export const randomToken = (): string => randomBytes(32).toString('base64url');
