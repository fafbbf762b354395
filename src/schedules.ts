// The reconciliation Schedules, one per tenant, and the organisation Schedules, one per tenant
// that names an organization: created or brought up to date at worker start-up.
import { type Client, ScheduleAlreadyRunning, type ScheduleOptions, ScheduleOverlapPolicy } from '@temporalio/client';
import { type AppConfig, env, type TenantConfig } from './config';
import { organizationScheduleId } from './latest-run';
import type { organizationWorkflow } from './workflows/organization';
import type { reconcileWorkflow } from './workflows/reconcile';

const DEFAULT_INTERVAL_SECONDS = 300;
const DEFAULT_ORGANIZATION_INTERVAL_SECONDS = 900;

export const reconcileScheduleId = (tenantId: string) => `reconcile/${tenantId.toLowerCase()}`;
export { latestResult, organizationScheduleId } from './latest-run';

/**
 * A tenant's workflow run every `intervalSeconds`; a run still going when the next is due makes
 * that one skip, never pile up, and a run past `timeoutSeconds` is stuck, not slow: it is ended,
 * so the next one can start.
 */
function everyInterval(taskQueue: string, workflowType: string, workflowId: string, args: unknown[], intervalSeconds: number, timeoutSeconds: number) {
  return {
    spec: { intervals: [{ every: intervalSeconds * 1000 }] },
    action: { type: 'startWorkflow' as const, workflowType, workflowId, taskQueue, args, workflowExecutionTimeout: Math.max(intervalSeconds, timeoutSeconds) * 1000 },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 60_000 },
  };
}

function scheduleOf(tenant: TenantConfig, taskQueue: string) {
  const args: Parameters<typeof reconcileWorkflow> = [{ tenantId: tenant.id }];
  return everyInterval(taskQueue, 'reconcileWorkflow', reconcileScheduleId(tenant.id), args, tenant.reconcile_interval_seconds ?? DEFAULT_INTERVAL_SECONDS, 30 * 60);
}

function organizationScheduleOf(tenant: TenantConfig, taskQueue: string) {
  const args: Parameters<typeof organizationWorkflow> = [{ tenantId: tenant.id }];
  const intervalSeconds = tenant.organization?.refresh_interval_seconds ?? DEFAULT_ORGANIZATION_INTERVAL_SECONDS;
  return everyInterval(taskQueue, 'organizationWorkflow', organizationScheduleId(tenant.id), args, intervalSeconds, 2 * 3600);
}

/** Idempotent: creates each tenant's Schedule, or updates it to the config (keeping a pause an operator set). */
export async function ensureReconcileSchedules(client: Client, config: AppConfig, taskQueue = env.taskQueue): Promise<void> {
  for (const tenant of config.tenants) {
    await ensureSchedule(client, reconcileScheduleId(tenant.id), scheduleOf(tenant, taskQueue));
    // The first read at once: until one completes, none of the organisation's accounts may be a target.
    if (tenant.organization) await ensureSchedule(client, organizationScheduleId(tenant.id), organizationScheduleOf(tenant, taskQueue), { triggerImmediately: true });
  }
}

async function ensureSchedule(
  client: Client,
  scheduleId: string,
  wanted: Pick<ScheduleOptions, 'spec' | 'action' | 'policies'>,
  state?: ScheduleOptions['state'],
): Promise<void> {
  try {
    // `state` only at creation: an update keeps what an operator set (a pause).
    await client.schedule.create({ scheduleId, ...wanted, ...(state && { state }) });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, ...wanted }));
  }
}
