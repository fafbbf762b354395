// One read of a tenant's organisation, started by its Schedule (`organization/{tenantId}`) or on
// demand (the Schedule triggered). Its result is the account map the API holds: the latest
// completed run's, so a read that fails (AWS unreachable, an account claimed by two tenants)
// leaves the previous map in use. A workflow of its own, not a step of reconciliation: it has its
// own pace (minutes at an organisation's size, every quarter of an hour), and reconciliation's
// recorded commands stay as they were. Deterministic code only.
import { proxyActivities } from '@temporalio/workflow';
import type { GrantActivities } from '../activities';
import type { OrganizationReport } from '../domain/accounts';

export interface OrganizationInput {
  tenantId: string;
}

const reading = proxyActivities<GrantActivities>({
  // Thousands of accounts at a share of the instance's pace; the read resumes from its last beat.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', maximumAttempts: 5, nonRetryableErrorTypes: ['AccountOverlap', 'NoOrganization'] },
});

export async function organizationWorkflow({ tenantId }: OrganizationInput): Promise<OrganizationReport> {
  return reading.readOrganization(tenantId);
}
