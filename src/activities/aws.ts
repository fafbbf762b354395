// AWS clients for one tenant, and the request pacing the Identity Center quotas call for (CONTRACT §7).
import { AsyncLocalStorage } from 'node:async_hooks';
import { IdentitystoreClient } from '@aws-sdk/client-identitystore';
import { SSOAdminClient, type ServiceInputTypes, type ServiceOutputTypes } from '@aws-sdk/client-sso-admin';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { createIsIdentityExpiredFunction, doesIdentityRequireRefresh, memoizeIdentityProvider } from '@smithy/core';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, FinalizeRequestMiddleware } from '@smithy/types';
import type { AwsTenantConfig } from '../config';

export interface TenantClients {
  sso: SSOAdminClient;
  identity: IdentitystoreClient;
}

// The SDK retries throttling, conflicts and 5xx with backoff; adaptive mode also slows down the
// client itself once AWS starts throttling. Whatever is left over goes to Temporal's retry.
const RETRY = { maxAttempts: 5, retryMode: 'adaptive' } as const;

// A call hung on a dead connection fails after this and is retried like a 5xx; AWS answers the
// admin API in well under a second. (Without throwOnRequestTimeout the SDK only logs a warning.)
const REQUEST_HANDLER = { connectionTimeout: 5_000, requestTimeout: 10_000, throwOnRequestTimeout: true };

/** `pace` is awaited before every attempt, retries included, so the provider sees the paced rate. */
export function createTenantClients(aws: AwsTenantConfig, pace: () => Promise<void>): TenantClients {
  // An emulator accepts any key, but the SDK refuses to sign without one.
  const emulatorKeys = aws.endpoint && !process.env.AWS_ACCESS_KEY_ID ? { accessKeyId: 'test', secretAccessKey: 'test' } : undefined;
  // Without either, the SDK's default chain (environment, profile, container or instance role).
  const credentials = aws.assume_role_arn ? oneSession(assumedRole(aws.assume_role_arn, aws, emulatorKeys)) : emulatorKeys;
  const config = {
    region: aws.region,
    ...RETRY,
    requestHandler: REQUEST_HANDLER,
    ...(aws.endpoint && { endpoint: aws.endpoint }),
    ...(credentials && { credentials }),
  };
  const sso = new SSOAdminClient(config);
  // Inside the retry loop (each attempt is a call AWS counts), before signing (a request that
  // waited is signed when it leaves).
  const paced: FinalizeRequestMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next) => async (args) => {
    await pace();
    return next(args);
  };
  sso.middlewareStack.addRelativeTo(paced, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'jitPace' },
  );
  return { sso, identity: new IdentitystoreClient(config) };
}

/**
 * The tenant's role, assumed with the worker's own credentials (the default chain, or `baseKeys`)
 * through STS in the instance's region (or the emulator), with the same timeouts and retries.
 */
function assumedRole(roleArn: string, aws: AwsTenantConfig, baseKeys: AwsCredentialIdentity | undefined): AwsCredentialIdentityProvider {
  return fromTemporaryCredentials({
    ...(baseKeys && { masterCredentials: baseKeys }),
    params: {
      RoleArn: roleArn,
      RoleSessionName: aws.role_session_name ?? 'jit-access',
      ...(aws.external_id && { ExternalId: aws.external_id }),
      ...(aws.role_duration_seconds && { DurationSeconds: aws.role_duration_seconds }),
    },
    clientConfig: { region: aws.region, ...RETRY, requestHandler: REQUEST_HANDLER, ...(aws.endpoint && { endpoint: aws.endpoint }) },
  });
}

/**
 * One set of temporary credentials for both of a tenant's clients: the provider itself assumes the
 * role anew on every call, and each client would keep its own. Renewed 10 minutes before expiry,
 * earlier than each client's own 5-minute window, so a client asking then always gets a fresh set.
 */
const oneSession = (provider: AwsCredentialIdentityProvider) =>
  memoizeIdentityProvider(provider, createIsIdentityExpiredFunction(10 * 60_000), doesIdentityRequireRefresh)!;

// Between the pacer letting a call go and the call reaching AWS lie signing, opening a socket, a
// busy event loop and the network; calls delayed unequally would otherwise crowd into one second
// at the provider. (Measured with the fault proxy under heavy load: 100 ms was not enough, and
// 250 ms let 21 calls into one second in one of two runs once activations got faster.)
export const WIRE_SLACK_MS = 500;

// Deletions go before creations in the pacing (CONTRACT §7): a flood of activations, from any
// tenant on the instance, must not hold back the removals that end access. Every call a deletion
// makes (its look, its status polls) runs in this context, so the pacer and the in-flight limit
// see it without being told.
const deletionContext = new AsyncLocalStorage<true>();

/** Runs `work` with deletion priority for every paced call and in-flight slot it waits for. */
export function asDeletion<T>(work: () => Promise<T>): Promise<T> {
  return deletionContext.run(true, work);
}

/** Two waiting lines: deletions are served first, each line in arrival order. */
class PriorityLine {
  private readonly deletions: (() => void)[] = [];
  private readonly others: (() => void)[] = [];
  get length(): number {
    return this.deletions.length + this.others.length;
  }
  push(wake: () => void): void {
    (deletionContext.getStore() ? this.deletions : this.others).push(wake);
  }
  shift(): (() => void) | undefined {
    return this.deletions.shift() ?? this.others.shift();
  }
}

/**
 * Lets at most `perSecond` calls go in any window of a second (plus WIRE_SLACK_MS): deletions
 * first, then in arrival order. A call goes once the call `perSecond` places before it went a
 * window ago (a sliding-window log). Unlike a token bucket with a burst on top of its rate, no
 * second ever holds more.
 */
export function pacer(perSecond: number, windowMs = 1000 + WIRE_SLACK_MS): () => Promise<void> {
  const sent: number[] = []; // when the last `perSecond` calls went, oldest first
  const waiting = new PriorityLine();
  let timer: NodeJS.Timeout | undefined;
  const release = () => {
    timer = undefined;
    while (waiting.length > 0) {
      const now = performance.now();
      const freeAt = sent.length < perSecond ? now : sent[0] + windowMs;
      if (freeAt > now) {
        timer = setTimeout(release, freeAt - now);
        return;
      }
      sent.push(now);
      if (sent.length > perSecond) sent.shift();
      waiting.shift()!();
    }
  };
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      if (!timer) release();
    });
}

/** At most `limit` holders at once; the rest wait, deletions first, then in order. */
export function semaphore(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting = new PriorityLine();
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
