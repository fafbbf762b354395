// Waiting for IAM Identity Center's asynchronous assignment operations.
import type { AccountAssignmentOperationStatus } from '@aws-sdk/client-sso-admin';
import { Context } from '@temporalio/activity';

/** Polls an asynchronous assignment operation until it has succeeded or failed. */
export async function settle(
  first: AccountAssignmentOperationStatus | undefined,
  poll: (requestId: string) => Promise<AccountAssignmentOperationStatus | undefined>,
  { firstDelayMs = 200, maxDelayMs = 2_000 } = {},
): Promise<AccountAssignmentOperationStatus> {
  let status = first;
  let delay = firstDelayMs;
  while (status?.Status === 'IN_PROGRESS' && status.RequestId) {
    await pause(delay, status.RequestId);
    delay = Math.min(delay * 2, maxDelayMs);
    status = await poll(status.RequestId);
  }
  if (status?.Status !== 'SUCCEEDED' && status?.Status !== 'FAILED') {
    throw new Error(`Unexpected assignment operation status from AWS: ${JSON.stringify(status)}`);
  }
  return status;
}

/** Waits between polls; inside an activity also heartbeats, and stops early if it is cancelled. */
async function pause(ms: number, requestId: string): Promise<void> {
  let context: Context | undefined;
  try {
    context = Context.current();
  } catch {
    // Called directly (tests, scripts), not by a worker.
  }
  if (!context) return new Promise((resolve) => setTimeout(resolve, ms));
  context.heartbeat({ requestId });
  await context.sleep(ms);
}

/**
 * Heartbeats every few seconds while `work` runs inside an activity: a call queued behind the
 * instance's limits can wait longer than the heartbeat timeout, and must not be taken for dead
 * (its retry would queue behind it, and a creation abandoned mid-poll still counts at AWS).
 */
export async function heartbeating<T>(work: () => Promise<T>, everyMs = 5_000): Promise<T> {
  let context: Context | undefined;
  try {
    context = Context.current();
  } catch {
    return work(); // called directly, not by a worker
  }
  const timer = setInterval(() => context.heartbeat(), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
