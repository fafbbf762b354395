// One tenant's reconciliation, started by its Schedule (`reconcile/{tenantId}`): compares the grants
// with the assignments IAM Identity Center holds, then
// - asks each active grant whose assignment is gone to re-create it (the grant's own workflow
//   does it, serialized with its expiry, so access never outlives the grant);
// - removes assignments that a grant run created and closed without confirming their removal
//   (terminated, timed out, failed mid-deprovisioning);
// - reports, and never touches, assignments this service did not create.
// Deterministic code only; the activities do the reads and each fix.
import { log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { GrantActivities } from '../activities';
import type { AuditActivities } from '../activities/audit';
import { GROUP_TARGET_PREFIX } from '../domain/grant';
import type { ForeignAssignment, GrantRef, LeftoverRun, PermissionSetSummary } from '../activities/reconcile';

export interface ReconcileInput {
  tenantId: string;
}

export interface ReconcileReport {
  tenantId: string;
  checkedAt: string;
  grantsChecked: number;
  assignmentsChecked: number;
  /** How the assignments were listed (per pair or per user), and how many pairs or users. */
  listing: 'pairs' | 'users';
  listed: number;
  /** More than MAX_FIXES of a kind: the rest are fixed in a later run. */
  truncated: boolean;
  restored: (GrantRef & { outcome: string; message?: string })[];
  removed: (GrantRef & { removed: boolean; reason?: string })[];
  /** Not created by this service, left in place (at most 100 listed; `foreignTotal` counts all). */
  foreign: ForeignAssignment[];
  foreignTotal: number;
  /** Each permission set's session duration in seconds, by name (absent in reports from before it): the API's policies read it. */
  sessionSeconds?: Record<string, number>;
  /**
   * The instance's permission sets (name, description), by name (absent in reports from before it):
   * the roles the API lists. Only the report's value changed: the round's commands are the same, so
   * runs recorded before it replay as they were.
   */
  permissionSets?: PermissionSetSummary[];
}

/** Fixes per run and kind; more wait for the next run. */
export const MAX_FIXES = 100;

const reading = proxyActivities<GrantActivities>({
  // Everything a round should list, however long that takes at its share of the instance's pace.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', maximumAttempts: 3 },
});
const fixing = proxyActivities<GrantActivities>({
  // A restore waits for the grant's workflow, which gives itself at most two minutes.
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

// As in the grant workflow: retried until written; the run ends only once all are written.
const auditing = proxyActivities<AuditActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function reconcileWorkflow({ tenantId }: ReconcileInput): Promise<ReconcileReport> {
  const checkedAt = new Date(workflowInfo().startTime).toISOString();
  const drift = await reading.findDrift(tenantId);
  const failure = (err: unknown) => (err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err));

  const restored = await Promise.all(
    drift.missing.slice(0, MAX_FIXES).map(async (grant) => {
      try {
        return { ...grant, ...(await fixing.restoreGrantAssignment(grant)) };
      } catch (err) {
        return { ...grant, outcome: 'failed', message: failure(err) };
      }
    }),
  );
  const removed = await Promise.all(
    drift.leaked.slice(0, MAX_FIXES).map(async (leak) => {
      const { tenantId: _tenant, runId: _run, ids: _ids, ...grant } = leak;
      try {
        const outcome = await fixing.removeLeakedAssignment(leak);
        if (outcome.removed) {
          await auditing.writeAuditEvent({
            tenant_id: tenantId,
            event: 'leaked_assignment_removed',
            at: new Date(Date.now()).toISOString(),
            actor: { type: 'system', id: 'reconciliation' },
            principal: { id: leak.principalId },
            target: leak.group !== undefined ? `${GROUP_TARGET_PREFIX}${leak.group}` : `AWS::Account::${leak.accountId}`,
            role: leak.role,
            grant_id: leak.grantId,
            access_request_id: null,
            details: { workflow_id: leak.workflowId, run_id: leak.runId },
            // One removal per closed run (a later reconciliation finds it recorded).
            occurrence: `leftover:${leak.runId}`,
          });
        }
        return { ...grant, ...outcome };
      } catch (err) {
        return { ...grant, removed: false, reason: failure(err) };
      }
    }),
  );

  for (const r of restored) log.warn('assignment missing for an active grant', { tenantId, ...r });
  for (const r of removed) log.warn('assignment of a closed grant found', { tenantId, ...r });
  if (drift.foreignTotal > 0) {
    log.info('assignments not created by this service (left in place)', { tenantId, count: drift.foreignTotal, sample: drift.foreign.slice(0, 10) });
  }
  return {
    tenantId,
    checkedAt,
    grantsChecked: drift.grantsChecked,
    assignmentsChecked: drift.assignmentsChecked,
    listing: drift.listing,
    listed: drift.listed,
    truncated: drift.missing.length > MAX_FIXES || drift.leaked.length > MAX_FIXES,
    restored,
    removed,
    foreign: drift.foreign,
    foreignTotal: drift.foreignTotal,
    sessionSeconds: drift.sessionSeconds,
    permissionSets: drift.permissionSets,
  };
}

/**
 * The record that a reconciliation removed what a closed grant run had left behind (id
 * `leftover-removed/{runId}`): the closed run can no longer say so itself, and without the record
 * an assignment made by hand later would be taken for that run's leftover again. It does nothing.
 */
export async function leftoverRemovedWorkflow(_removed: LeftoverRun): Promise<void> {}
