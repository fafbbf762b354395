// Waiting for IAM Identity Center's asynchronous operations.
import { Context } from '@temporalio/activity';
import { ActivityCancelledError, ActivityNotFoundError, type AsyncCompletionClient } from '@temporalio/client';

/** What AWS answers about one of its asynchronous operations (an assignment's, a permission set's provisioning). */
interface OperationStatus {
  Status?: string;
  RequestId?: string;
}

/**
 * Polls an asynchronous operation until it has succeeded or failed. Not stopped by the
 * activity's cancellation or timeout: an assignment operation AWS accepted counts against the
 * instance's operations in flight until it ends, so its caller's slot must not be freed before (a
 * retry would start another while it still runs).
 */
export async function settle<S extends OperationStatus>(
  first: S | undefined,
  poll: (requestId: string) => Promise<S | undefined>,
  { firstDelayMs = 200, maxDelayMs = 2_000 } = {},
): Promise<S> {
  let status = first;
  let delay = firstDelayMs;
  while (status?.Status === 'IN_PROGRESS' && status.RequestId) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, maxDelayMs);
    status = await poll(status.RequestId);
  }
  if (status?.Status !== 'SUCCEEDED' && status?.Status !== 'FAILED') {
    throw new Error(`Unexpected operation status from AWS: ${JSON.stringify(status)}`);
  }
  return status;
}

/** The running activity's context; undefined when called directly (tests, scripts), not by a worker. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * Heartbeats every few seconds while `work` runs inside an activity: a call queued behind the
 * instance's limits can wait longer than the heartbeat timeout, and must not be taken for dead
 * (its retry would queue behind it, and a creation abandoned mid-poll still counts at AWS).
 */
export async function heartbeating<T>(work: () => Promise<T>, { everyMs = 5_000, details }: { everyMs?: number; details?: () => unknown } = {}): Promise<T> {
  const context = activityContext();
  if (!context) return work();
  // With `details`, every beat carries the progress so far (a beat without them would erase it).
  const timer = setInterval(() => context.heartbeat(details?.()), everyMs);
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
  /** Throws once this attempt is over: the server gave up on it, or it was cancelled. */
  stillCurrent(): void;
}

/**
 * `heartbeating` for an activity whose retry must know what an earlier attempt decided.
 * - Until the record, the activity beats through the client, in order, and `record` is the last
 *   of those beats: it returns once the server holds the details. No SDK heartbeat is sent before
 *   it: the SDK's are throttled and sent later, so one could land after the record and erase it.
 * - From the record on, the SDK's heartbeats carry the record (and the worker's own heartbeat
 *   timeout and cancellation work as usual).
 * - Before the record, the worker may have timed the attempt out on its own (it saw no SDK
 *   heartbeat): `stillCurrent` says so, and the activity must stop before it acts.
 */
export async function heartbeatingWithRecord<T, D>(client: () => AsyncCompletionClient, work: (attempt: RecordedAttempt<D>) => Promise<T>, everyMs = 5_000): Promise<T> {
  const ctx = activityContext();
  // Called directly, not by a worker: there is no retry to tell.
  if (!ctx) return work({ recorded: undefined, record: async () => {}, stillCurrent: () => {} });
  const { taskToken, heartbeatDetails } = ctx.info;
  const completion = client();
  let details = heartbeatDetails as D | undefined;
  // A retry of an attempt that recorded: the server holds the record already.
  let recorded = details !== undefined;
  let over: Error | undefined;
  let last: Promise<void> = Promise.resolve();
  const beatThroughClient = (): Promise<void> => {
    last = last
      .catch(() => undefined)
      .then(() => completion.heartbeat(taskToken, details))
      .catch((err: Error) => {
        if (err instanceof ActivityNotFoundError || err instanceof ActivityCancelledError) over ??= err;
        throw err;
      });
    return last;
  };
  const beat = () => (recorded ? ctx.heartbeat(details) : beatThroughClient().catch(() => undefined)); // a failed beat is not fatal by itself
  beat();
  const timer = setInterval(beat, everyMs);
  const stillCurrent = () => {
    if (over) throw over;
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('the activity was cancelled');
  };
  try {
    return await work({
      recorded: recorded ? details : undefined,
      record: async (toRecord) => {
        stillCurrent();
        details = toRecord;
        await beatThroughClient();
        recorded = true;
        ctx.heartbeat(details);
      },
      stillCurrent,
    });
  } finally {
    clearInterval(timer);
  }
}
