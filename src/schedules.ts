// The reconciliation Schedules: one per tenant, created or brought up to date at worker start-up.
import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import { type AppConfig, env, type TenantConfig } from './config';
import type { reconcileWorkflow } from './workflows/reconcile';

const DEFAULT_INTERVAL_SECONDS = 300;

export const reconcileScheduleId = (tenantId: string) => `reconcile/${tenantId.toLowerCase()}`;

function scheduleOf(tenant: TenantConfig, taskQueue: string) {
  const intervalSeconds = tenant.reconcile_interval_seconds ?? DEFAULT_INTERVAL_SECONDS;
  return {
    spec: { intervals: [{ every: intervalSeconds * 1000 }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'reconcileWorkflow',
      workflowId: reconcileScheduleId(tenant.id),
      taskQueue,
      args: [{ tenantId: tenant.id }] as Parameters<typeof reconcileWorkflow>,
      // A run that takes this long is stuck, not slow: end it, so the next one can start.
      workflowExecutionTimeout: Math.max(intervalSeconds, 30 * 60) * 1000,
    },
    // A run still going when the next is due makes that one skip, never pile up.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 60_000 },
  };
}

/** Idempotent: creates each tenant's Schedule, or updates it to the config (keeping a pause an operator set). */
export async function ensureReconcileSchedules(client: Client, config: AppConfig, taskQueue = env.taskQueue): Promise<void> {
  for (const tenant of config.tenants) {
    const scheduleId = reconcileScheduleId(tenant.id);
    const wanted = scheduleOf(tenant, taskQueue);
    try {
      await client.schedule.create({ scheduleId, ...wanted });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, ...wanted }));
    }
  }
}
