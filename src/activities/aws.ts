// AWS clients for one tenant, and the request pacing the Identity Center quotas call for (CONTRACT §7).
import { AsyncLocalStorage } from 'node:async_hooks';
import { IdentitystoreClient } from '@aws-sdk/client-identitystore';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import {
  DescribePermissionSetCommand,
  paginateListPermissionSets,
  SSOAdminClient,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-sso-admin';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { createIsIdentityExpiredFunction, doesIdentityRequireRefresh, memoizeIdentityProvider } from '@smithy/core';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, FinalizeRequestMiddleware } from '@smithy/types';
import type { AwsTenantConfig } from '../config';
import { sessionSecondsOf } from '../domain/sessions';
import { createLogger } from '../log';

// At debug level, one line per admin API call as the pacer lets it go: the moment the pacing
// decides, before a busy event loop or the network can delay the call (test/reliability/scale-out).
const log = createLogger('aws');

export interface TenantClients {
  sso: SSOAdminClient;
  identity: IdentitystoreClient;
  /** Read-only: where the tenant's accounts are (src/activities/organizations.ts). */
  organizations: OrganizationsClient;
}

// The SDK retries throttling, conflicts and 5xx with backoff; adaptive mode also slows down the
// client itself once AWS starts throttling. Whatever is left over goes to Temporal's retry.
const RETRY = { maxAttempts: 5, retryMode: 'adaptive' } as const;

// A call hung on a dead connection fails after this and is retried like a 5xx; AWS answers the
// admin API in well under a second. (Without throwOnRequestTimeout the SDK only logs a warning.)
const REQUEST_HANDLER = { connectionTimeout: 5_000, requestTimeout: 10_000, throwOnRequestTimeout: true };

/** `pace` is awaited before every attempt, retries included, so the provider sees the paced rate. */
/** `tenantName` names the default STS session, so CloudTrail tells tenants on one role apart. */
export function createTenantClients(aws: AwsTenantConfig, pace: () => Promise<void>, tenantName: string): TenantClients {
  // An emulator accepts any key, but the SDK refuses to sign without one.
  const emulatorKeys = aws.endpoint && !process.env.AWS_ACCESS_KEY_ID ? { accessKeyId: 'test', secretAccessKey: 'test' } : undefined;
  // Without either, the SDK's default chain (environment, profile, container or instance role).
  const credentials = aws.assume_role_arn ? oneSession(assumedRole(aws.assume_role_arn, aws, emulatorKeys, tenantName)) : emulatorKeys;
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
  const paced = <I extends object, O extends object>(): FinalizeRequestMiddleware<I, O> => (next, context) => async (args) => {
    await pace();
    callerCheck.getStore()?.();
    if (log.isLevelEnabled('debug')) log.debug({ operation: context.commandName, paced_at: Date.now() }, 'aws call paced');
    return next(args);
  };
  const where = { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'jitPace' } as const;
  sso.middlewareStack.addRelativeTo(paced<ServiceInputTypes, ServiceOutputTypes>(), where);
  // Its reads wait in the same line as the instance's calls: one role, one management account,
  // and a refresh of thousands of accounts must never hold back what grants need.
  const organizations = new OrganizationsClient(config);
  organizations.middlewareStack.addRelativeTo(paced(), where);
  return { sso, identity: new IdentitystoreClient(config), organizations };
}

/**
 * The tenant's role, assumed with the worker's own credentials (the default chain, or `baseKeys`)
 * through STS in the instance's region (or the emulator), with the same timeouts and retries.
 */
function assumedRole(roleArn: string, aws: AwsTenantConfig, baseKeys: AwsCredentialIdentity | undefined, tenantName: string): AwsCredentialIdentityProvider {
  return fromTemporaryCredentials({
    ...(baseKeys && { masterCredentials: baseKeys }),
    params: {
      RoleArn: roleArn,
      RoleSessionName: aws.role_session_name ?? defaultSessionName(tenantName),
      ...(aws.external_id && { ExternalId: aws.external_id }),
      ...(aws.role_duration_seconds && { DurationSeconds: aws.role_duration_seconds }),
    },
    clientConfig: { region: aws.region, ...RETRY, requestHandler: REQUEST_HANDLER, ...(aws.endpoint && { endpoint: aws.endpoint }) },
  });
}

/** `jit-access-<tenant name>`, in the characters and length STS takes ([\w+=,.@-], at most 64). */
function defaultSessionName(tenantName: string): string {
  return `jit-access-${tenantName}`.replace(/[^\w+=,.@-]/g, '-').slice(0, 64);
}

/**
 * One set of temporary credentials for both of a tenant's clients: the provider itself assumes the
 * role anew on every call, and each client would keep its own. Renewed 10 minutes before expiry,
 * earlier than each client's own 5-minute window, so a client asking then always gets a fresh set.
 */
const oneSession = (provider: AwsCredentialIdentityProvider) =>
  memoizeIdentityProvider(provider, createIsIdentityExpiredFunction(10 * 60_000), doesIdentityRequireRefresh)!;

// Between the pacer letting a call go and the call reaching AWS lie signing, a busy event loop and
// the network; a call delayed more than the next one crowds into its second at the provider. The
// pacer's window is a second plus this much, so evenly spaced calls bear that much unequal delay:
// 20 calls per 1.1 s use 18.2 calls per second of the provider's 20 (CONTRACT §7 asks for 18).
export const WIRE_SLACK_MS = 100;

// Deletions go before creations in the pacing (CONTRACT §7): a flood of activations, from any
// tenant on the instance, must not hold back the removals that end access. Every call a deletion
// makes (its look, its status polls) runs in this context, so the pacer and the in-flight limit
// see it without being told.
const deletionContext = new AsyncLocalStorage<true>();

/** Runs `work` with deletion priority for every paced call and in-flight slot it waits for. */
export function asDeletion<T>(work: () => Promise<T>): Promise<T> {
  deletionsRunning++;
  let running: Promise<T>;
  try {
    running = deletionContext.run(true, work);
  } catch (err) {
    deletionEnded();
    throw err;
  }
  return running.finally(deletionEnded);
}

// The worker's audit writes yield to its deletions (afterDeletions): in a burst of expiries the
// writes, and the workflow tasks that follow them, come after the removals that end access.
let deletionsRunning = 0;
let lastDeletionEnded = -Infinity;
let quietCheck: NodeJS.Timeout | undefined;
const awaitingQuiet = new Set<() => void>();
/** How long no deletion must have run for the deletions to count as done. */
const DELETIONS_QUIET_MS = 250;

function deletionEnded(): void {
  deletionsRunning--;
  lastDeletionEnded = performance.now();
  wakeWhenQuiet();
}

/** Wakes whoever waits once no deletion runs and none has for DELETIONS_QUIET_MS; a deletion that ends later sets it again. */
function wakeWhenQuiet(): void {
  clearTimeout(quietCheck);
  quietCheck = undefined;
  if (awaitingQuiet.size === 0 || deletionsRunning > 0) return;
  const left = DELETIONS_QUIET_MS - (performance.now() - lastDeletionEnded);
  if (left <= 0) for (const wake of [...awaitingQuiet]) wake();
  else quietCheck = setTimeout(wakeWhenQuiet, left + 1);
}

/** Resolves once this process has run no deletion for a moment, or after `maxWaitMs`, whichever is first. */
export function afterDeletions(maxWaitMs: number): Promise<void> {
  if (maxWaitMs <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      awaitingQuiet.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, maxWaitMs);
    awaitingQuiet.add(wake);
    wakeWhenQuiet();
  });
}

// Background reads come last: after deletions and creations, so they never hold back what grants
// need. Reconciliation's also keep within a share of the instance's calls (see `pacer`'s callers);
// an organisation's read, a minute of calls every quarter of an hour, may take what grants leave.
type Background = 'reconciliation' | 'organization';
const backgroundContext = new AsyncLocalStorage<Background>();

/** Runs `work` with the lowest priority: its paced calls wait behind every other. */
export function asBackground<T>(work: () => Promise<T>, kind: Background = 'reconciliation'): Promise<T> {
  return backgroundContext.run(kind, work);
}

export function inBackground(): boolean {
  return backgroundContext.getStore() !== undefined;
}

/** Whether the calls made now keep within reconciliation's share of the instance's calls. */
export function inReconciliation(): boolean {
  return backgroundContext.getStore() === 'reconciliation';
}

// A call can wait at the pacer for minutes under load; the activity attempt that made it may be
// over by then (timed out, and retried elsewhere). A call that acts checks again when it may go.
const callerCheck = new AsyncLocalStorage<() => void>();

/** Runs `work`, whose paced calls each run `check` (which throws to stop them) once the pacer lets them go. */
export function checkedWhenPaced<T>(check: (() => void) | undefined, work: () => Promise<T>): Promise<T> {
  return check ? callerCheck.run(check, work) : work();
}

/** Three waiting lines: deletions first, then the rest, then background work; each in arrival order. */
class PriorityLine {
  private readonly deletions: (() => void)[] = [];
  private readonly others: (() => void)[] = [];
  private readonly background: (() => void)[] = [];
  get length(): number {
    return this.deletions.length + this.others.length + this.background.length;
  }
  push(wake: () => void): void {
    (deletionContext.getStore() ? this.deletions : inBackground() ? this.background : this.others).push(wake);
  }
  shift(): (() => void) | undefined {
    return this.deletions.shift() ?? this.others.shift() ?? this.background.shift();
  }
}

/** A fixed limit, or one read afresh at each decision (a worker's share of the deployment's quota). */
export type Limit = number | (() => number);
const current = (limit: Limit): number => (typeof limit === 'number' ? limit : limit());
// While a limit is 0 (a worker not yet counted by the others), or below the holders, waiters look again this often.
const RECHECK_MS = 250;

/**
 * Lets calls go evenly spaced, `windowMs / perSecond` apart: deletions first, then in arrival order.
 * Evenly, not in bursts of `perSecond`: the calls of a burst reach the provider spread by whatever
 * delays each one, and crowd into the next second. A timer that fires late catches up by at most
 * half a spacing, so a stalled event loop then lets two calls go together, not every call that fell
 * due meanwhile: no window of `windowMs` less half a spacing holds more than `perSecond` calls. A
 * limit read afresh (a worker's share) holds from the next call on; while it is 0, nothing goes.
 */
export function pacer(perSecond: Limit, windowMs = 1000 + WIRE_SLACK_MS): () => Promise<void> {
  const waiting = new PriorityLine();
  let timer: NodeJS.Timeout | undefined;
  let nextAt = -Infinity; // when the next call may go
  const release = () => {
    timer = undefined;
    while (waiting.length > 0) {
      const limit = current(perSecond);
      const now = performance.now();
      if (limit <= 0) {
        timer = setTimeout(release, RECHECK_MS);
        return;
      }
      if (nextAt > now) {
        timer = setTimeout(release, nextAt - now);
        return;
      }
      const spacing = windowMs / limit;
      nextAt = Math.max(nextAt, now - spacing / 2) + spacing;
      waiting.shift()!();
    }
  };
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      if (!timer) release();
    });
}

/**
 * At most `limit` holders at once; the rest wait, deletions first, then in order. `onWaiting` hears
 * how many wait, each time that changes.
 */
export function semaphore(limit: Limit, onWaiting: (waiting: number) => void = () => {}): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting = new PriorityLine();
  let timer: NodeJS.Timeout | undefined;
  // Counts each waiter it wakes at once, so a newcomer never overtakes one already woken.
  const admit = () => {
    while (waiting.length > 0 && active < current(limit)) {
      active++;
      waiting.shift()!();
      onWaiting(waiting.length);
    }
    if (waiting.length > 0 && typeof limit !== 'number' && !timer) {
      timer = setTimeout(() => {
        timer = undefined;
        admit();
      }, RECHECK_MS);
    }
  };
  return async (fn) => {
    if (waiting.length === 0 && active < current(limit)) active++;
    else {
      const admitted = new Promise<void>((resolve) => waiting.push(resolve));
      onWaiting(waiting.length);
      admit();
      await admitted;
    }
    try {
      return await fn();
    } finally {
      active--;
      admit();
    }
  };
}

/** One permission set of an instance: its name, ARN, description and session duration. */
export interface PermissionSetEntry {
  name: string;
  arn: string;
  /** Its Description in IAM Identity Center ('' when it has none). */
  description: string;
  /** How long a session from it may last (SessionDuration), in seconds. */
  sessionSeconds: number;
}

/** Every permission set of the instance, described (one ListPermissionSets a page, one DescribePermissionSet each, paced by the client). */
export async function listPermissionSets(sso: SSOAdminClient, instanceArn: string): Promise<PermissionSetEntry[]> {
  const arns: string[] = [];
  for await (const page of paginateListPermissionSets({ client: sso }, { InstanceArn: instanceArn })) arns.push(...(page.PermissionSets ?? []));
  const described = await Promise.all(arns.map((arn) => sso.send(new DescribePermissionSetCommand({ InstanceArn: instanceArn, PermissionSetArn: arn }))));
  return described.flatMap(({ PermissionSet: set }) =>
    set?.Name && set.PermissionSetArn ? [{ name: set.Name, arn: set.PermissionSetArn, description: set.Description ?? '', sessionSeconds: sessionSecondsOf(set.SessionDuration) }] : [],
  );
}
