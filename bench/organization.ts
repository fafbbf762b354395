// The organisation refresh at an organisation's size (issue 39 §1): a tenant whose accounts are
// 10,000 (BENCH_ORG_ACCOUNTS) in 40 OUs (BENCH_ORG_OUS, two levels deep) of moto's organisation,
// read by the real worker's organizationWorkflow at the default quota (20 calls a second on an
// instance of its own). Measured: the first read (every account's tags asked for), then a refresh
// (tags carried over, at most tag_reads_per_refresh asked again), each against its floor: its own
// calls at the quota's pace, and (for the refresh) the same calls sent straight to moto by a plain
// loop through the worker's pacer, with no workflow, heartbeat or packing: what moto and the pace
// alone cost.
import {
  CreateAccountCommand,
  MoveAccountCommand,
  OrganizationsClient,
  paginateListAccountsForParent,
  paginateListOrganizationalUnitsForParent,
  paginateListTagsForResource,
} from '@aws-sdk/client-organizations';
import { pacer } from '../src/activities/aws';
import type { Client } from '@temporalio/client';
import { unpackOrganization } from '../src/latest-run';
import { organizationScheduleId } from '../src/schedules';
import type { OrganizationResult } from '../src/workflows/organization';
import { organizationsClient, ouNamed, rootOf } from '../test/support/organization';

/** Top-level OUs of the bench's organisation (each with children): the tenant's roots_or_ous. */
export async function seedBenchOrganization(endpoint: string, accounts: number, ous: number): Promise<{ topOus: string[]; accounts: number }> {
  const client = organizationsClient(endpoint);
  try {
    const rootId = await rootOf(client);
    const tops = Math.max(1, Math.round(Math.sqrt(ous)));
    const topOus: string[] = [];
    const leaves: string[] = [];
    for (let t = 0; t < tops; t++) {
      const top = await ouNamed(client, rootId, `bench-${t}`);
      topOus.push(top);
      leaves.push(top);
      for (let c = 0; leaves.length < Math.ceil(((t + 1) * ous) / tops); c++) leaves.push(await ouNamed(client, top, `bench-${t}-${c}`));
    }
    // moto answers in a few ms: 16 at once keeps seeding 10,000 accounts to about a minute.
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let n = next++; n < accounts; n = next++) {
          const name = `bench-account-${n}`;
          const tags = [{ Key: 'env', Value: ['production', 'staging', 'development'][n % 3] }, { Key: 'team', Value: `team-${n % 50}` }];
          const { CreateAccountStatus } = await client.send(new CreateAccountCommand({ AccountName: name, Email: `${name}@bench.example`, Tags: tags }));
          await client.send(new MoveAccountCommand({ AccountId: CreateAccountStatus!.AccountId!, SourceParentId: rootId, DestinationParentId: leaves[n % leaves.length] }));
        }
      }),
    );
    return { topOus, accounts };
  } finally {
    client.destroy();
  }
}

/**
 * The refresh's calls without the service: every OU's accounts and child OUs listed (four OUs at
 * once, pages of 20), then `tagReads` accounts' tags (twenty at once), each call through a pacer
 * of `callsPerSecond`, as the worker's.
 */
export async function refreshFloor(endpoint: string, topOus: string[], tagReads: number, callsPerSecond: number): Promise<{ seconds: number; calls: number }> {
  const client: OrganizationsClient = organizationsClient(endpoint);
  const pace = pacer(callsPerSecond);
  client.middlewareStack.add((next) => async (args) => (await pace(), next(args)), { step: 'finalizeRequest', name: 'benchPace' });
  let calls = 0;
  const started = performance.now();
  try {
    const accounts: string[] = [];
    let queue = [...topOus];
    while (queue.length > 0) {
      const taken = queue.splice(0, 4);
      const children = await Promise.all(
        taken.map(async (parent) => {
          for await (const page of paginateListAccountsForParent({ client, pageSize: 20 }, { ParentId: parent })) calls++, accounts.push(...(page.Accounts ?? []).map((a) => a.Id!));
          const found: string[] = [];
          for await (const page of paginateListOrganizationalUnitsForParent({ client, pageSize: 20 }, { ParentId: parent })) calls++, found.push(...(page.OrganizationalUnits ?? []).map((ou) => ou.Id!));
          return found;
        }),
      );
      queue = [...queue, ...children.flat()];
    }
    const due = accounts.slice(0, tagReads);
    for (let i = 0; i < due.length; i += 20) {
      await Promise.all(due.slice(i, i + 20).map(async (id) => { for await (const _ of paginateListTagsForResource({ client }, { ResourceId: id })) calls++; }));
    }
    return { seconds: Math.round((performance.now() - started) / 100) / 10, calls };
  } finally {
    client.destroy();
  }
}

interface Read {
  seconds: number;
  calls: number;
  floorSeconds: number;
  accounts: number;
  /** The run's result as Temporal stores it (the map gzipped), and the map as JSON. */
  resultBytes: number;
  mapBytes: number;
}

/** The first read (started by the Schedule the worker made at start-up) and one refresh (the Schedule triggered). */
export async function organizationScenario(temporal: Client, tenantId: string, callsPerSecond: number): Promise<{ first: Read; refresh: Read }> {
  const schedule = temporal.schedule.getHandle(organizationScheduleId(tenantId));
  const runs = async () => (await schedule.describe().catch(() => undefined))?.info.recentActions.map((a) => a.action.workflow) ?? [];
  async function completed(run: { workflowId: string; firstExecutionRunId: string }): Promise<Read> {
    const handle = temporal.workflow.getHandle<() => Promise<OrganizationResult>>(run.workflowId, run.firstExecutionRunId);
    const result = await handle.result();
    const { startTime, closeTime } = await handle.describe();
    const map = unpackOrganization(result);
    return {
      seconds: Math.round((closeTime!.getTime() - startTime.getTime()) / 100) / 10,
      calls: result.calls,
      floorSeconds: Math.round((10 * result.calls) / callsPerSecond) / 10,
      accounts: result.accountCount,
      resultBytes: JSON.stringify(result).length,
      mapBytes: JSON.stringify(map).length,
    };
  }
  async function nextRun(before: Set<string>, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = (await runs()).find((r) => !before.has(r.firstExecutionRunId));
      if (run) return run;
      if (Date.now() > deadline) throw new Error(`no read of the organisation started in ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const first = await completed(await nextRun(new Set(), 120_000));
  const before = new Set((await runs()).map((r) => r.firstExecutionRunId));
  await schedule.trigger();
  const refresh = await completed(await nextRun(before, 60_000));
  return { first, refresh };
}
