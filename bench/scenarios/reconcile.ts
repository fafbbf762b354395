// Reconciliation: a round's AWS calls and time as the tenant's grant runs grow. One tenant's grant
// runs grow to each size of `settings.reconcileRuns`; at each, one round runs alone and the calls it
// makes are counted at the proxy. Of the runs added each time, a tenth are active grants (of which
// 1%, at most 100, are then terminated by an operator and left behind for the round to remove) and
// the rest closed requests, spread over the users and the listed accounts. The old scan listed
// every (listed account, permission set) pair of the instance.
import { env as workerEnv, loadConfig } from '../../src/config';
import { grantWorkflowId } from '../../src/domain/grant';
import type { ReconcileReport } from '../../src/workflows/reconcile';
import { waitFor } from '../../scripts/stack';
import { RECONCILE_TENANT, ROLE, log, settings } from '../settings';
import { type Scenario, yes } from '../scenario';
import { made } from '../load';
import { round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'reconcile',
  key: 'reconcile',
  title: 'reconcile',
  run,
  rows: (reconcile: any, s) =>
    reconcile.rounds.map((r: any) => {
      const { ListAccountAssignmentsForPrincipal: perUser = 0, ListAccountAssignments: perPair = 0, ListPermissionSets: sets = 0, DescribePermissionSet: described = 0 } = r.callsByOperation;
      const oldMinutes = round(reconcile.oldScanPairs / reconcile.callsPerSecond / 60);
      return [
        `a reconciliation round, ${r.runs} grant runs (${r.open} open, ${r.leftBehind} left behind by terminations)`,
        `${r.seconds} s; ${r.calls} calls: ${perUser} per user, ${perPair} per pair, ${sets + described} for the permission sets' names, ` +
          `${r.calls - perUser - perPair - sets - described} to remove; ${r.grantsChecked} grants checked, ${r.removed} removed`,
        `${reconcile.oldScanPairs} calls (every pair; ${oldMinutes} min at ${reconcile.callsPerSecond} calls/s)`,
        `${round((100 * r.calls) / reconcile.oldScanPairs, 2)}%`,
        'every leftover removed',
        yes(r.everyLeftoverRemoved),
      ];
    }),
  note: (reconcile: any, s) =>
    `Reconciliation: one tenant listing ${s.reconcileAccounts} accounts on an instance with ${s.reconcilePermissionSets} permission sets, ${s.reconcileUsers} users; ` +
    `calls counted at a proxy in front of moto (IAM Identity Center's admin API; Identity Store lookups not counted); runs made in ` +
    `${reconcile.rounds.map((r: any) => `${r.making.closedSeconds} s (closed) and ${r.making.activeSeconds} s (active)`).join(', then ')}.`,
};

async function run(b: Bench) {
  const { temporal, stack, configPath, ask, withdrawnRun, reconcileWorld } = b;
  const tenantId = RECONCILE_TENANT.id;
  const { users, accounts, permissionSets, proxy } = reconcileWorld!;
  const tokens = await Promise.all(users.map((u) => stack.issueToken(tenantId, u, { expiresIn: '12h' })));
  /** The i-th key of a role: users in turn, each on accounts of its own stride, so grants spread over users and accounts (unique while i < users × accounts). */
  const keyOf = (i: number) => {
    const user = i % users.length;
    return { user, acct: accounts[(Math.floor(i / users.length) + user * 61) % accounts.length] };
  };
  const visible = `WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND AccessTenant = '${tenantId}'`;
  const count = async (where: string) => (await temporal.workflow.count(`${visible} AND ${where}`)).count;
  const total = { closed: 0, active: 0, terminated: 0 };
  const rounds = [];
  for (const size of settings.reconcileRuns) {
    const adding = size - total.closed - total.active;
    if (adding <= 0) continue;
    const active = Math.round(adding / 10);
    const closed = adding - active;
    const terminated = Math.min(100, Math.ceil(active / 100));
    const [firstClosed, firstActive] = [total.closed, total.active];
    log(`reconcile: adding ${closed} closed runs and ${active} active grants`);
    const [closedSeconds, activeSeconds] = await Promise.all([
      made('closed runs (requests withdrawn)', closed, (i) => {
        const k = keyOf(firstClosed + i);
        return withdrawnRun(tenantId, tokens[k.user], users[k.user].sub, k.acct);
      }, 48),
      made('active grants', active, async (i) => {
        const k = keyOf(firstActive + i);
        await ask(tenantId, tokens[k.user], k.acct, ROLE);
      }, 16),
    ]);
    total.closed += closed;
    total.active += active;
    await waitFor('every new grant active', async () => (await count(`ExecutionStatus = 'Running' AND AccessStatus = 'active'`)) >= total.active - total.terminated, 60 * 60_000);
    // An operator terminates some from the Web UI: no cleanup runs, their assignments stay.
    for (let i = 0; i < terminated; i++) {
      const k = keyOf(firstActive + i);
      const key = { tenantId, principalId: users[k.user].sub, target: `AWS::Account::${k.acct}`, role: ROLE };
      await temporal.workflow.getHandle(grantWorkflowId(key)).terminate('bench: operator terminates');
    }
    total.terminated += terminated;
    await waitFor('every run closed and listed', async () =>
      (await count(`ExecutionStatus = 'Completed'`)) >= total.closed && (await count(`ExecutionStatus = 'Terminated'`)) >= total.terminated, 30 * 60_000);

    await proxy.reset();
    const t0 = performance.now();
    const report = await temporal.workflow.execute<(input: { tenantId: string }) => Promise<ReconcileReport>>('reconcileWorkflow', {
      workflowId: `bench-reconcile/${size}/${Date.now()}`,
      taskQueue: workerEnv.taskQueue,
      args: [{ tenantId }],
    });
    const seconds = round((performance.now() - t0) / 1000, 1);
    const stats = await proxy.stats();
    const removed = report.removed.filter((r) => r.removed).length;
    const measured = {
      runs: (await temporal.workflow.count(visible)).count,
      open: await count(`ExecutionStatus = 'Running'`),
      leftBehind: terminated,
      seconds,
      calls: stats.calls,
      callsByOperation: stats.counts,
      listing: report.listing,
      listed: report.listed,
      grantsChecked: report.grantsChecked,
      removed,
      restored: report.restored.length,
      everyLeftoverRemoved: removed === terminated && !report.truncated,
      making: { closedSeconds, activeSeconds },
    };
    log('reconcile:', JSON.stringify(measured));
    rounds.push(measured);
  }
  // Every account the tenant lists or has a grant on, times every permission set of the instance (here every grant is on a listed account).
  return { oldScanPairs: accounts.length * permissionSets.length, callsPerSecond: loadConfig(configPath).tenants.find((t) => t.id === tenantId)!.aws.limits.calls_per_second, rounds };
}
