// What Temporal's failures mean for a caller: which are a 503 to retry, which are a workflow's
// refusal (a 409 or 403), and the one an ensure sends again by itself.
import { isGrpcServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, NamespaceNotFoundError, WorkflowNotFoundError } from '@temporalio/common';
import { AccessError } from '../domain/errors';
import { rejection } from '../workflows/messages';
import { pause } from './runs';

export function grpcCodeOf(err: unknown): number | undefined {
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    if (isGrpcServiceError(cause)) return cause.code;
  }
  return undefined;
}

/**
 * Temporal buffers queries to a workflow while it runs a task; past a small limit (one by default)
 * it answers RESOURCE_EXHAUSTED, and the client's own retries do not wait long enough under load.
 */
export function isQueryBufferFull(err: unknown): boolean {
  return grpcCodeOf(err) === 8; // RESOURCE_EXHAUSTED
}

/**
 * Temporal's answers (WorkflowNotReady, FAILED_PRECONDITION) when the workflow task that carried an
 * update failed ("unexpected workflow task failure"), or when the grant's workflow task is still
 * failing ("Workflow Task in failed state"): the update changed nothing.
 */
function isWorkflowTaskFailure(err: unknown): boolean {
  return isFailedPrecondition(err, /workflow task/i);
}

/** A FAILED_PRECONDITION from Temporal, anywhere in the error's causes, whose message matches. */
function isFailedPrecondition(err: unknown, message: RegExp): boolean {
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    if (isGrpcServiceError(cause) && cause.code === 9 && message.test(cause.message)) return true;
  }
  return false;
}

/** Answered when an update's workflow task failed (twice, for an ensure): a 503 the client may retry. */
function taskFailedError(): AccessError {
  return new AccessError('unavailable', 'The grant could not take this call just now (its workflow task failed); nothing was changed. Try again.', {}, 1);
}

/**
 * Temporal's answer (FAILED_PRECONDITION) to a query of a workflow whose task queue has had no
 * worker polling it for a while (the server's poller window, 20 s by default): the worker is down.
 */
function isNoWorkerPolling(err: unknown): boolean {
  return isFailedPrecondition(err, /no poller seen/i);
}

const UNAVAILABLE_GRPC_CODES = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

/** How long a caller waits before trying again a Temporal that is not there (down, or still coming up). */
export const ABSENT_RETRY_AFTER_SECONDS = 5;

/**
 * The namespace is unknown to the server, as on a fresh server before it is registered or before
 * its frontend has loaded it (issue 35 §9). The client turns most such answers into
 * NamespaceNotFoundError; a raw call's gRPC NOT_FOUND names it only in the status details.
 */
export function isNamespaceNotFound(err: unknown): boolean {
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    if (cause instanceof NamespaceNotFoundError) return true;
    if (isGrpcServiceError(cause) && cause.code === 5) {
      const details = cause.metadata?.get('grpc-status-details-bin')?.[0];
      if (Buffer.isBuffer(details) && details.includes('temporal.api.errordetails.v1.NamespaceNotFoundFailure')) return true;
    }
  }
  return false;
}

/**
 * The 503 (always with Retry-After) for a Temporal that cannot be reached, that does not know the
 * namespace (yet), or is there but cannot answer this call now: RESOURCE_EXHAUSTED (a grant's
 * query buffer, a rate limit of the server's), a grant whose workflow task is failing, or no worker
 * polling to answer a query.
 * Undefined for any other error.
 */
export function temporalUnavailableError(err: unknown): AccessError | undefined {
  if (isWorkflowTaskFailure(err)) return taskFailedError();
  if (grpcCodeOf(err) === 8) return new AccessError('unavailable', 'Temporal is busy with this grant or this tenant just now; nothing was changed. Try again.', {}, 1);
  if (isNoWorkerPolling(err)) return new AccessError('unavailable', 'No worker is taking calls just now, so the grant cannot be asked; nothing was changed. Try again.', {}, ABSENT_RETRY_AFTER_SECONDS);
  if (isNamespaceNotFound(err)) return new AccessError('unavailable', 'Temporal does not know this service\'s namespace yet; nothing was changed. Try again.', {}, ABSENT_RETRY_AFTER_SECONDS);
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'number' && UNAVAILABLE_GRPC_CODES.has(code)) return new AccessError('unavailable', 'Temporal cannot be reached; try again.', {}, ABSENT_RETRY_AFTER_SECONDS);
  }
  return undefined;
}

const TASK_RETRY_DELAY_MS = 500;

/**
 * An ensure is idempotent, so one whose workflow task failed (which changed nothing) is sent once
 * more; a second failure is a 503 with Retry-After (temporalUnavailableError), never a 500
 * (issue 24: under load the SDK's core can fail a task that carries an update).
 */
export async function onceMoreIfTaskFailed<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!isWorkflowTaskFailure(err)) throw err;
  }
  // Time for Temporal to retry the failed task (without this update), which usually succeeds.
  await pause(TASK_RETRY_DELAY_MS);
  return call();
}

/** The failure type a grant's update validator refused with (`rejection`), if that is what failed. */
export function rejectionType(err: unknown): string | undefined {
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** A review or revoke, with the grant's refusals as the caller's errors. */
export async function rejectionsAsErrors<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new AccessError('conflict', 'The grant has already closed.');
    // A review or revoke is not repeated for the caller: they see it failed and may send it again.
    if (isWorkflowTaskFailure(err)) throw taskFailedError();
    const type = rejectionType(err);
    const message = (err as WorkflowUpdateFailedError).cause?.message ?? '';
    if (type === rejection.selfReview) throw new AccessError('forbidden', message);
    if (type === rejection.notPending || type === rejection.notOpen || type === rejection.alreadyApproved) throw new AccessError('conflict', message);
    throw err;
  }
}
