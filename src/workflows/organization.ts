// One read of a tenant's organisation, started by its Schedule (`organization/{tenantId}`) or on
// demand (the Schedule triggered). Its result is the account map the API holds: the latest
// completed run's, so a read that fails (AWS unreachable, an account claimed by two tenants)
// leaves the previous map in use. A workflow of its own, not a step of reconciliation: it has its
// own pace (a minute or more at an organisation's size, every quarter of an hour), and
// reconciliation's recorded commands stay as they were. Deterministic code only.
import { proxyActivities } from '@temporalio/workflow';
import type { GrantActivities } from '../activities';
import type { PackedOrganizationReport } from '../latest-run';

export interface OrganizationInput {
  tenantId: string;
}

/** The read (the map packed), and how many open grants it ended because their account left. */
export type OrganizationResult = PackedOrganizationReport & { grantsEnded: number | null };

const reading = proxyActivities<GrantActivities>({
  // Thousands of accounts at a share of the instance's pace; the read resumes from its last beat.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', maximumAttempts: 5, nonRetryableErrorTypes: ['AccountOverlap', 'NoOrganization'] },
});

const ending = proxyActivities<GrantActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});

export async function organizationWorkflow({ tenantId }: OrganizationInput): Promise<OrganizationResult> {
  const report = await reading.readOrganization(tenantId);
  // Before the run completes (and the API takes the new map), so no grant outlives its account's departure by a read.
  // Failing that (Temporal's visibility down), the map is still taken: every read looks at every
  // open grant again, so the next one ends what this one could not. null says it was not looked at.
  const grantsEnded = await ending.endGrantsOutsideOrganization(report).catch(() => null);
  return { ...report, grantsEnded };
}
