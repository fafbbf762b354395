// Waiting for IAM Identity Center's asynchronous assignment operations.
import type { AccountAssignmentOperationStatus } from '@aws-sdk/client-sso-admin';
import { Context } from '@temporalio/activity';
import { ActivityCancelledError, ActivityNotFoundError, type AsyncCompletionClient } from '@temporalio/client';

/** Polls an asynchronous assignment operation until it has succeeded or failed. */
export async function settle(
  first: AccountAssignmentOperationStatus | undefined,
  poll: (requestId: string) => Promise<AccountAssignmentOperationStatus | undefined>,
  { firstDelayMs = 200, maxDelayMs = 2_000 } = {},
): Promise<AccountAssignmentOperationStatus> {
  let status = first;
  let delay = firstDelayMs;
  while (status?.Status === 'IN_PROGRESS' && status.RequestId) {
    await pause(delay);
    delay = Math.min(delay * 2, maxDelayMs);
    status = await poll(status.RequestId);
  }
  if (status?.Status !== 'SUCCEEDED' && status?.Status !== 'FAILED') {
    throw new Error(`Unexpected assignment operation status from AWS: ${JSON.stringify(status)}`);
  }
  return status;
}

/**
 * Waits between polls; inside an activity, stops early if it is cancelled. It does not heartbeat:
 * its callers run inside `heartbeating` or `heartbeatingWithRecord`, which own the heartbeats.
 */
async function pause(ms: number): Promise<void> {
  let context: Context | undefined;
  try {
    context = Context.current();
  } catch {
    // Called directly (tests, scripts), not by a worker.
  }
  if (!context) return new Promise((resolve) => setTimeout(resolve, ms));
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

/** What `heartbeatingWithRecord` hands the activity's work. */
export interface RecordedAttempt<D> {
  /** What an earlier attempt recorded; undefined in a first attempt. */
  recorded: D | undefined;
  /** Returns once the server holds `details`: a retry reads them back as `recorded`. */
  record(details: D): Promise<void>;
  /** Throws once the server has said this attempt is over (timed out, or cancelled). */
  stillCurrent(): void;
}

/**
 * `heartbeating` for an activity whose retry must know what an earlier attempt decided. Every
 * heartbeat of the activity goes through the client, in order, carrying the latest record: the
 * SDK's own heartbeats are throttled and sent later, so one sent before a record could land after
 * it and erase it. Going around the SDK, the activity also learns from these answers, not from its
 * context, that the server has given up on the attempt: `stillCurrent` tells it, before it acts.
 */
export async function heartbeatingWithRecord<T, D>(client: () => AsyncCompletionClient, work: (attempt: RecordedAttempt<D>) => Promise<T>, everyMs = 5_000): Promise<T> {
  let context: Context | undefined;
  try {
    context = Context.current();
  } catch {
    // Called directly, not by a worker: there is no retry to tell.
    return work({ recorded: undefined, record: async () => {}, stillCurrent: () => {} });
  }
  const { taskToken, heartbeatDetails } = context.info;
  const completion = client();
  let details = heartbeatDetails as D | undefined;
  let over: Error | undefined;
  let last: Promise<void> = Promise.resolve();
  const send = (): Promise<void> => {
    last = last
      .catch(() => undefined)
      .then(() => completion.heartbeat(taskToken, details))
      .catch((err: Error) => {
        if (err instanceof ActivityNotFoundError || err instanceof ActivityCancelledError) over ??= err;
        throw err;
      });
    return last;
  };
  // A failed beat is not fatal by itself: the next one, or the heartbeat timeout, settles it.
  const timer = setInterval(() => send().catch(() => undefined), everyMs);
  try {
    return await work({
      recorded: details,
      record: async (recorded) => {
        details = recorded;
        await send();
      },
      stillCurrent: () => {
        if (over) throw over;
      },
    });
  } finally {
    clearInterval(timer);
  }
}
