// Reading what an activity's failure says.
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import type { AssignmentLookup } from '../../activities';

export function providerReason(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * What a failed provisionAssignment had found before it failed: in the failure's details, or (when
 * it timed out) in its last heartbeat. None: it failed before its look, so it created nothing.
 */
export function lookupOf(err: unknown): AssignmentLookup | undefined {
  const isLookup = (d: unknown): d is AssignmentLookup =>
    typeof d === 'object' && d !== null && typeof (d as AssignmentLookup).preexisted === 'boolean' && typeof (d as AssignmentLookup).ids === 'object';
  for (let cause: unknown = err; cause instanceof Error; cause = (cause as Error).cause) {
    if (cause instanceof ApplicationFailure && isLookup(cause.details?.[0])) return cause.details[0];
    if (cause instanceof TimeoutFailure && isLookup(cause.lastHeartbeatDetails)) return cause.lastHeartbeatDetails;
  }
  return undefined;
}
