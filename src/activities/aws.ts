// AWS clients for one tenant, and the request pacing the Identity Center quotas call for (CONTRACT §7).
import { IdentitystoreClient } from '@aws-sdk/client-identitystore';
import { SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { ApplicationFailure } from '@temporalio/common';
import type { AwsTenantConfig } from '../config';

export interface TenantClients {
  sso: SSOAdminClient;
  identity: IdentitystoreClient;
}

// The SDK retries throttling, conflicts and 5xx with backoff; adaptive mode also slows down the
// client itself once AWS starts throttling. Whatever is left over goes to Temporal's retry.
const RETRY = { maxAttempts: 5, retryMode: 'adaptive' } as const;

export function createTenantClients(tenantId: string, aws: AwsTenantConfig, pace: () => Promise<void>): TenantClients {
  if (aws.assume_role_arn) {
    // TODO: assume the role with fromTemporaryCredentials once @aws-sdk/credential-providers
    // is a dependency; until then such a tenant cannot be provisioned at all.
    throw ApplicationFailure.nonRetryable(
      `Tenant ${tenantId}: assume_role_arn is not supported yet (needs @aws-sdk/credential-providers)`,
      'UnsupportedConfig',
    );
  }
  const config = {
    region: aws.region,
    ...RETRY,
    ...(aws.endpoint && { endpoint: aws.endpoint }),
    // An emulator accepts any key, but the SDK refuses to sign without one.
    ...(aws.endpoint && !process.env.AWS_ACCESS_KEY_ID && { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  };
  const sso = new SSOAdminClient(config);
  // Paced per request, before the retry loop: retries are rare and adaptive mode paces those.
  sso.middlewareStack.add(
    (next) => async (args) => {
      await pace();
      return next(args);
    },
    { step: 'initialize', name: 'jitPace' },
  );
  return { sso, identity: new IdentitystoreClient(config) };
}

/**
 * Lets at most `perSecond` calls start per second on average, and `burst` at once: a token bucket
 * kept as the time the next call is due (GCRA), so one caller's sequential calls do not wait.
 */
export function pacer(perSecond: number, burst: number): () => Promise<void> {
  const gap = 1000 / perSecond;
  let due = 0;
  return async () => {
    const now = Date.now();
    due = Math.max(due, now) + gap;
    const wait = due - now - burst * gap;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  };
}

/** At most `limit` holders at once; the rest wait in order. */
export function semaphore(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, so `active` never dips and gets overtaken.
      const wake = waiting.shift();
      if (wake) wake();
      else active--;
    }
  };
}
