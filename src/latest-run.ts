// What the Schedules' runs answered: the reports the API and the worker read (the permission sets
// from reconciliation, the account map from the organisation's read). Apart from schedules.ts,
// which names the workflows, so the activities can read them too without an import circle.
import { type Client, ScheduleNotFoundError } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { OrganizationReport } from './domain/accounts';

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

/**
 * An organisation's read as a run answers it: the map gzipped, so 10,000 accounts (about 2.5 MB of
 * JSON, over Temporal's 2 MB payload limit) travel as a few hundred KB; the counts stay readable in
 * the Web UI. The same packing carries the read's progress in its heartbeats.
 */
export interface PackedOrganizationReport {
  tenantId: string;
  readAt: string;
  calls: number;
  accountCount: number;
  /** base64 of the gzipped JSON of the rest of the OrganizationReport. */
  packed: string;
}

export function packed<T>(value: T): string {
  return gzipSync(JSON.stringify(value)).toString('base64');
}

/** Far above 100,000 accounts' map (about 25 MB): a history edited by hand cannot make a reader unpack gigabytes. */
const MOST_UNPACKED_BYTES = 256 * 1024 * 1024;

export function unpacked<T>(text: string): T {
  return JSON.parse(gunzipSync(Buffer.from(text, 'base64'), { maxOutputLength: MOST_UNPACKED_BYTES }).toString('utf8')) as T;
}

export function packOrganization({ tenantId, readAt, calls, ...map }: OrganizationReport): PackedOrganizationReport {
  return { tenantId, readAt, calls, accountCount: Object.keys(map.accounts).length, packed: packed(map) };
}

export function unpackOrganization({ tenantId, readAt, calls, packed: text }: PackedOrganizationReport): OrganizationReport {
  return { tenantId, readAt, calls, ...unpacked<Omit<OrganizationReport, 'tenantId' | 'readAt' | 'calls'>>(text) };
}

/** The tenant's latest completed organisation read (undefined: none yet), as latestResult. */
export async function latestOrganization(client: Client, tenantId: string): Promise<{ runId: string; result: () => Promise<OrganizationReport> } | undefined> {
  const latest = await latestResult<PackedOrganizationReport>(client, organizationScheduleId(tenantId));
  return latest && { runId: latest.runId, result: async () => unpackOrganization(await latest.result()) };
}
