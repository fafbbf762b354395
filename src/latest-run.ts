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

/**
 * Each tenant's latest completed organisation read, as one process (the API, a worker) holds it:
 * looked for at most once per `checkMs(holding)`, the map fetched only when a newer run completed.
 * A look that fails (Temporal down) rejects its callers and is made again by the next one; the map
 * held meanwhile stays.
 */
export class OrganizationMaps {
  private readonly held = new Map<string, { runId: string; report: OrganizationReport }>();
  private readonly looks = new Map<string, { until: number; value: Promise<void> }>();

  constructor(
    private readonly client: () => Client,
    /** How long a look holds, by whether a map is held already. */
    private readonly checkMs: (holding: boolean) => number,
  ) {}

  refresh(tenantId: string): Promise<void> {
    const cached = this.looks.get(tenantId);
    if (cached && cached.until > Date.now()) return cached.value;
    const look = {
      until: Date.now() + this.checkMs(this.held.has(tenantId)),
      value: (async () => {
        const latest = await latestOrganization(this.client(), tenantId);
        if (!latest || this.held.get(tenantId)?.runId === latest.runId) return;
        this.held.set(tenantId, { runId: latest.runId, report: await latest.result() });
      })(),
    };
    look.value.catch(() => this.looks.get(tenantId) === look && this.looks.delete(tenantId));
    this.looks.set(tenantId, look);
    return look.value;
  }

  /** The map held (undefined: no read has completed, as far as this process has looked). */
  get(tenantId: string): OrganizationReport | undefined {
    return this.held.get(tenantId)?.report;
  }
}
