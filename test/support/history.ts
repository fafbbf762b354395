// What a grant's run did after its last timer fired (its expiry), read from its history: how the
// tests tell an expiry ended in its timer's own workflow task from one that took activities.
import type { temporal } from '@temporalio/proto';

export interface AfterExpiry {
  /** Workflow tasks completed from the timer on. */
  workflowTasks: number;
  /** Activities scheduled from the timer on, by type. */
  activities: string[];
  /** Local activities run from the timer on (their markers). */
  localActivities: number;
  completed: boolean;
}

export function afterLastTimer(events: temporal.api.history.v1.IHistoryEvent[]): AfterExpiry {
  const fired = events.map((e) => e.timerFiredEventAttributes != null).lastIndexOf(true);
  if (fired < 0) throw new Error('no timer fired in this run');
  const after = events.slice(fired);
  return {
    workflowTasks: after.filter((e) => e.workflowTaskCompletedEventAttributes).length,
    activities: after.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name!] : [])),
    localActivities: after.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length,
    completed: after.some((e) => e.workflowExecutionCompletedEventAttributes),
  };
}
