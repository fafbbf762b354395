// What the Schedules' runs answered: the reports the API and the worker read (the permission sets
// from reconciliation, the account map from the organisation's read). Apart from schedules.ts,
// which names the workflows, so the activities can read them too without an import circle.
import { type Client, ScheduleNotFoundError } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';

export const organizationScheduleId = (tenantId: string) => `organization/${tenantId.toLowerCase()}`;

/**
 * The result of the latest completed run a Schedule started (undefined: none yet, or no
 * Schedule). Anything else (Temporal down or overloaded) goes up, to be 503, never "none".
 */
export async function latestResult<R>(client: Client, scheduleId: string): Promise<{ runId: string; result: () => Promise<R> } | undefined> {
  try {
    const { info } = await client.schedule.getHandle(scheduleId).describe();
    for (const { action } of [...info.recentActions].reverse()) {
      const run = client.workflow.getHandle(action.workflow.workflowId, action.workflow.firstExecutionRunId);
      if ((await run.describe()).status.name !== 'COMPLETED') continue;
      return { runId: action.workflow.firstExecutionRunId, result: () => run.result() as Promise<R> };
    }
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError || err instanceof WorkflowNotFoundError)) throw err;
  }
  return undefined;
}
