// Expiry: many grants expiring in the same second, against timers that end access alike and bare timers.
import { CreateAccountAssignmentCommand } from '@aws-sdk/client-sso-admin';
import { waitFor } from '../../scripts/stack';
import { WIRE_SLACK_MS } from '../../src/activities/aws';
import { FLOOR_TASK_QUEUE } from '../floor';
import { type Scenario, yes } from '../scenario';
import { closedLoop } from '../load';
import { cpuByProcess } from '../processes';
import { account, log, ROLE, settings, sleep, USER } from '../settings';
import { grantWorkflowId } from '../../src/domain/grant';
import { temporal as temporalProto } from '@temporalio/proto';
import { percentile, round, secondsSummary, summary, median } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'expiry',
  key: 'expiry',
  title: 'expiry',
  run,
  rows: (expiry: any, s) => {
    // Each row's figures are the medians over the runs; its ratio is the median of the runs' ratios, and their spread (min–max).
    const runs: any[] = expiry.runs;
    const med = (of: (run: any) => number) => round(median(runs.map(of)), 2);
    const ratios = (of: (run: any) => number) => {
      const values = runs.map(of);
      return `${round(median(values), 2)}x (${round(Math.min(...values), 2)}–${round(Math.max(...values), 2)})`;
    };
    const grants = Math.min(...runs.map((r) => r.grants));
    const what = `${grants} expiring together (${runs.length} runs)`;
    const everyDeleted = runs.every((r) => r.deleted === r.grants);
    const lags = (key: 'lagSeconds' | 'endAccessFloor' | 'endAccessLocalFloor' | 'bareTimers') => {
      const of = (r: any) => (key === 'lagSeconds' ? r.lagSeconds : r[key].lagSeconds);
      return `${med((r) => of(r).p50)} / ${med((r) => of(r).p99)} / ${med((r) => of(r).max)} s`;
    };
    return [
      ...(['p50', 'p99'] as const).map((p) => [
        `${what}: lag ${p}`,
        `${med((r) => r.lagSeconds[p])} s`,
        `${med((r) => r.endAccessFloor.lagSeconds[p])} s (timers spread alike, each ending access by an activity)`,
        ratios((r) => r.ratios.endAccess[p]),
        '≤ 1.3x',
        yes(median(runs.map((r) => r.ratios.endAccess[p])) <= 1.3 && everyDeleted),
      ]),
      ...(['p50', 'p99'] as const).map((p) => [
        `${what}: lag ${p}, ratio to timers ending access by a local activity`,
        `${med((r) => r.lagSeconds[p])} s`,
        `${med((r) => r.endAccessLocalFloor.lagSeconds[p])} s (the same, in the timer's own task)`,
        ratios((r) => r.ratios.endAccessLocal[p]),
        '',
        '',
      ]),
      ...(['p50', 'p99'] as const).map((p) => [
        `${what}: lag ${p}, ratio to bare timers`,
        `${med((r) => r.lagSeconds[p])} s`,
        `${med((r) => r.bareTimers.lagSeconds[p])} s (bare timers due together)`,
        ratios((r) => r.ratios.bareTimers[p]),
        '',
        '',
      ]),
      [`${what}: lag p50 / p99 / max`, lags('lagSeconds'), `${quotaFloorSeconds(grants, s.instances, s.callsPerSecond)} s (provider quota)`, '', '', ''],
      [`${grants} timers spread as the grants' expires_at, each one DeleteAccountAssignment in an activity: due to the call, p50 / p99 / max`, lags('endAccessFloor'), '', '', '', ''],
      [`${grants} timers spread alike, each one DeleteAccountAssignment in a local activity: due to the call, p50 / p99 / max`, lags('endAccessLocalFloor'), '', '', '', ''],
      [`${runs[0].bareTimers.workflows} bare Temporal timers due together: due to close, p50 / p99 / max`, lags('bareTimers'), '', '', '', ''],
    ];
  },
  note: (expiry: any) =>
    `Expiry: ${expiry.runs.length} runs, each the grants then their floors; grants made ${expiry.runs.map((r: any) => r.grants).join(', ')} (of ${expiry.asked} asked), ` +
    `expires_at spread over ${expiry.runs.map((r: any) => r.expiresAtSpreadMs).join(', ')} ms; each DeleteAccountAssignment dated by its arrival at a proxy in front of moto ` +
    `(${expiry.runs.map((r: any) => r.deleted).join(', ')} seen, ${expiry.runs.map((r: any) => r.deletedEarly).join(', ')} before expires_at); the end-access floor's calls through the same proxy, on accounts of its own.`,
};

async function run(b: Bench) {
  const { temporal, tenants, ssoOf, tenantOf, untilActive, awsProxy } = b;
  return expiryScenario();

  /**
   * The expiry floor: what Temporal alone takes to fire N timers due in the same second and close
   * their workflows (bare workflows on the floor's worker), from the due time to each close.
   */
  async function timerFloor(n: number) {
    const prefix = `floor-timer/${Date.now()}`;
    const startedAt = Date.now();
    const since = new Date(startedAt - 1000).toISOString();
    const dueMs = Date.now() + 20_000;
    await closedLoop(n, 20, async (i) => {
      await temporal.workflow.start('floorTimerWorkflow', { taskQueue: FLOOR_TASK_QUEUE, workflowId: `${prefix}/${i}`, args: [dueMs] });
    });
    if (Date.now() > dueMs - 2000) throw new Error(`starting ${n} timer workflows took ${Date.now() - startedAt} ms: too late for their timers`);
    const query = `WorkflowType = 'floorTimerWorkflow' AND StartTime >= '${since}'`;
    const deadline = dueMs + 10 * 60_000;
    await sleep(dueMs - Date.now());
    while ((await temporal.workflow.count(`${query} AND ExecutionStatus = 'Completed'`)).count < n && Date.now() < deadline) await sleep(1000);
    const lags: number[] = [];
    for await (const run of temporal.workflow.list({ query })) if (run.closeTime) lags.push((run.closeTime.getTime() - dueMs) / 1000);
    return { workflows: n, closed: lags.length, lagSeconds: secondsSummary(lags) };
  }

  /**
   * Each DeleteAccountAssignment of one of `accounts` as it arrived at the bench tenants' proxy
   * (epoch ms; the first per account: a retry is not a later end), read from the proxy's log once a
   * second until every account has one or `deadline` passes. Nothing is asked of moto meanwhile.
   */
  async function deletionsOf(accounts: Set<string>, deadline: number): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    for (;;) {
      for (const call of (await awsProxy.stats()).assignmentCalls) {
        if (call.op === 'DeleteAccountAssignment' && accounts.has(call.account) && !seen.has(call.account)) seen.set(call.account, call.epochMs);
      }
      if (seen.size >= accounts.size || Date.now() > deadline) return seen;
      await sleep(1000);
    }
  }

  /**
   * The fair expiry floor: the least a Temporal workflow can do to end access. One workflow per
   * offset, due at a common instant plus it (the grants' spread), sleeps until then and makes one
   * DeleteAccountAssignment in a local activity (so in the timer's own workflow task) through the
   * same proxy as the grants, on accounts of its own; from the due time to the call's arrival.
   */
  async function endAccessFloor(offsetsMs: number[], run: number, by: 'local activity' | 'activity') {
    const n = offsetsMs.length;
    const accounts = offsetsMs.map((_, i) => String((by === 'activity' ? 880_000_000_000 : 870_000_000_000) + run * settings.expiring + i));
    // The assignments it removes, made beforehand straight in moto (not measured).
    await closedLoop(n, 16, async (i) => {
      const t = tenantOf(i);
      await ssoOf[i % tenants.length].send(
        new CreateAccountAssignmentCommand({ InstanceArn: t.instanceArn, TargetId: accounts[i], TargetType: 'AWS_ACCOUNT', PermissionSetArn: t.permissionSetArn, PrincipalType: 'USER', PrincipalId: t.userId }),
      );
    });
    await awsProxy.reset();
    const startedAt = Date.now();
    const dueMs = startedAt + 20_000;
    await closedLoop(n, 20, async (i) => {
      await temporal.workflow.start(by === 'activity' ? 'floorEndAccessByActivityWorkflow' : 'floorEndAccessWorkflow', {
        taskQueue: FLOOR_TASK_QUEUE,
        workflowId: `floor-end-access/${startedAt}/${i}`,
        args: [{ dueMs: dueMs + offsetsMs[i], region: i % tenants.length, account: accounts[i] }],
      });
    });
    if (Date.now() > dueMs - 2000) throw new Error(`starting ${n} end-access workflows took ${Date.now() - startedAt} ms: too late for their timers`);
    await sleep(dueMs - Date.now());
    const cpuBefore = cpuByProcess();
    const deleted = await deletionsOf(new Set(accounts), dueMs + Math.max(...offsetsMs) + 10 * 60_000);
    const type = by === 'activity' ? 'floorEndAccessByActivityWorkflow' : 'floorEndAccessWorkflow';
    await waitFor('the floor\'s runs closed', async () => (await temporal.workflow.count(`WorkflowType = '${type}' AND ExecutionStatus = 'Running'`)).count === 0, 5 * 60_000);
    const lags = accounts.flatMap((a, i) => (deleted.has(a) ? [(deleted.get(a)! - dueMs - offsetsMs[i]) / 1000] : []));
    return { workflows: n, ended: deleted.size, lagSeconds: secondsSummary(lags), cpuMsPerExpiry: cpuPer(cpuBefore, n) };
  }

  /** A grant run's workflow tasks after its last timer fired: started, timed out (sticky queue), and the seconds from the timer to the run's close. */
  async function tasksAfterExpiry(workflowId: string) {
    const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    const fired = events.map((e) => Boolean(e.timerFiredEventAttributes)).lastIndexOf(true);
    const after = events.slice(fired);
    const seconds = (e: (typeof events)[number] | undefined) => Number(e?.eventTime?.seconds ?? 0) + (e?.eventTime?.nanos ?? 0) / 1e9;
    return {
      started: after.filter((e) => e.workflowTaskStartedEventAttributes).length,
      timedOut: after.filter((e) => e.workflowTaskTimedOutEventAttributes).length,
      seconds: round(seconds(events.at(-1)) - seconds(events[fired]), 2),
      timeline: after.map((e) => `${String(temporalProto.api.enums.v1.EventType[e.eventType ?? 0]).replace('EVENT_TYPE_', '')} +${round(seconds(e) - seconds(events[fired]), 2)}`),
    };
  }

  /**
   * Expiry, BENCH_EXPIRY_RUNS times: grants made to expire in the same second, then the floors
   * (timers ending access, spread as the grants' expires_at were; and bare timers due together).
   */
  async function expiryScenario() {
    const n = settings.expiring;
    const wave = Math.max(1, settings.expiryWave);
    // Calibration: one wave of long grants (not measured) shows how long a wave takes here and now.
    const calibrationStart = Date.now();
    const calibration: number[] = [];
    await Promise.all(
      Array.from({ length: Math.min(wave, n) }, async (_, j) => {
        const t0 = Date.now();
        const view = await untilActive(j, account(9, j), 7200, 250);
        calibration.push(Date.parse(view.activated_at!) - t0);
      }),
    );
    const waveSeconds = (Date.now() - calibrationStart) / 1000;
    const runs = [];
    for (let run = 0; run < Math.max(1, settings.expiryRuns); run++) {
      log(`expiry: run ${run + 1} of ${settings.expiryRuns}`);
      const grants = await expiringGrants(run, waveSeconds, percentile(calibration, 50) / 1000);
      const first = Math.min(...grants.expiresAt);
      const offsets = grants.expiresAt.map((at) => at - first);
      log(`expiry: the floors, ${offsets.length} timers each ending access, spread over ${grants.expiresAtSpreadMs} ms`);
      const endAccess = await endAccessFloor(offsets, run, 'activity');
      log('expiry: end-access floor (an activity)', JSON.stringify(endAccess));
      const endAccessLocal = await endAccessFloor(offsets, run, 'local activity');
      log('expiry: end-access floor (a local activity)', JSON.stringify(endAccessLocal));
      log(`expiry: ${n} bare timers due in the same second`);
      const bareTimers = await timerFloor(n);
      log('expiry: bare timers', JSON.stringify(bareTimers));
      const { expiresAt: _, ...measured } = grants;
      const ratio = (floor: { p50: number; p99: number }) => ({ p50: round(grants.lagSeconds.p50 / floor.p50, 2), p99: round(grants.lagSeconds.p99 / floor.p99, 2) });
      runs.push({
        ...measured,
        endAccessFloor: endAccess,
        endAccessLocalFloor: endAccessLocal,
        bareTimers,
        ratios: { endAccess: ratio(endAccess.lagSeconds), endAccessLocal: ratio(endAccessLocal.lagSeconds), bareTimers: ratio(bareTimers.lagSeconds) },
      });
    }
    return { asked: n, instances: tenants.length, runs };
  }

  /**
   * One run's grants: made in waves that all aim at one second, then each one's lag from its
   * expires_at to its DeleteAccountAssignment's arrival at the proxy; waits until they have closed.
   */
  async function expiringGrants(run: number, waveSeconds: number, calibratedDelay: number) {
    const n = settings.expiring;
    const wave = Math.max(1, settings.expiryWave);
    const waves = Math.ceil(n / wave);
    await awsProxy.reset();
    // All aim at the middle of one second T: a wave sent at s asks for round(T + 0.5 - s - delay)
    // seconds, and waves are sent when that is a whole number, so only the activation delay's
    // jitter spreads expires_at.
    const target = Math.ceil(Date.now() / 1000) + Math.ceil(waves * (1.5 * waveSeconds + 1)) + 20;
    let delay = calibratedDelay;
    const expiresAt = new Map<string, number>();
    const tenantIds = new Map<string, string>();
    log(`expiry: creating ${n} grants in ${waves} waves, all to expire at ${new Date(target * 1000 + 500).toISOString()}`);
    for (let w = 0; w < waves; w++) {
      const now = Date.now() / 1000;
      const phase = (((target + 0.5 - delay) % 1) + 1) % 1;
      let sendAt = Math.floor(now) + phase;
      if (sendAt < now) sendAt += 1;
      await sleep((sendAt - Date.now() / 1000) * 1000);
      const duration = Math.round(target + 0.5 - sendAt - delay);
      if (duration < 5) {
        // Slower than planned (a busy machine): measure what was made rather than give up.
        log(`expiry: out of time after ${expiresAt.size} grants`);
        break;
      }
      const delays: number[] = [];
      await Promise.all(
        Array.from({ length: Math.min(wave, n - w * wave) }, async (_, j) => {
          const i = w * wave + j;
          const acct = account(4, run * n + i);
          const t0 = Date.now();
          const view = await untilActive(i, acct, duration, 250);
          delays.push(Date.parse(view.activated_at!) - t0);
          expiresAt.set(acct, Date.parse(view.expires_at!));
          tenantIds.set(acct, tenantOf(i).id);
        }),
      );
      delay = percentile(delays, 50) / 1000;
    }
    const expiries = [...expiresAt.values()];
    const [first, last] = [Math.min(...expiries), Math.max(...expiries)];
    log(`expiry: all active; expires_at spread over ${last - first} ms; reading the proxy's log`);
    await sleep(Math.max(0, first - Date.now()));
    const cpuBefore = cpuByProcess();
    const deleted = await deletionsOf(new Set(expiresAt.keys()), last + 15 * 60_000);
    const lags = [...deleted].map(([acct, at]) => (at - expiresAt.get(acct)!) / 1000);
    // The floors run on a machine the grants have left: every one of them closed (audit written).
    const open = `WorkflowType = 'grantWorkflow' AND ExecutionStatus = 'Running' AND AccessExpiresAt >= '${new Date(first).toISOString()}' AND AccessExpiresAt <= '${new Date(last).toISOString()}'`;
    await waitFor("the run's grants closed", async () => (await temporal.workflow.count(open)).count === 0, 5 * 60_000).catch((err) => log('expiry:', err instanceof Error ? err.message : err));
    const cpuMsPerExpiry = cpuPer(cpuBefore, expiresAt.size);
    log('expiry: CPU per expiry, ms by process', JSON.stringify(cpuMsPerExpiry));
    // Where the slowest ten spent their time: their workflow tasks after the expiry timer, and how many timed out on the sticky queue.
    const slowest = [...deleted].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([acct]) => acct);
    const lateTasks = await Promise.all(slowest.map((acct) => tasksAfterExpiry(grantWorkflowId({ tenantId: tenantIds.get(acct)!, principalId: USER.sub, target: `AWS::Account::${acct}`, role: ROLE }))));
    log('expiry: the ten latest deletions\' runs after their timer', JSON.stringify(lateTasks));
    return {
      cpuMsPerExpiry,
      lateTasks,
      grants: expiresAt.size,
      expiresAtSpreadMs: last - first,
      deleted: deleted.size,
      deletedEarly: lags.filter((l) => l < 0).length,
      lagSeconds: { ...summary(lags), ...secondsSummary(lags) },
      expiresAt: expiries,
    };
  }
}

/** CPU used by each process since `before`, in ms per expiry (from the first due time until every run closed). */
function cpuPer(before: Record<string, number>, expiries: number): Record<string, number> {
  return Object.fromEntries(Object.entries(cpuByProcess()).map(([name, ms]) => [name, round((ms - (before[name] ?? 0)) / expiries, 2)]));
}

/**
 * The least time N deletions spread over the instances can take when the pacer lets one call go
 * every (1000 + WIRE_SLACK_MS) / callsPerSecond ms per instance (one call per deletion): the first
 * goes at once, the busiest instance's last one (its count - 1) spacings later.
 */
function quotaFloorSeconds(grants: number, instances: number, callsPerSecond: number): number {
  const spacingMs = (1000 + WIRE_SLACK_MS) / callsPerSecond;
  return round(((Math.ceil(grants / instances) - 1) * spacingMs) / 1000);
}
