// Reads: a tenant's listings at an enterprise's size, against bare visibility calls.
import { execFileSync } from 'node:child_process';
import { repoRoot, stopChild, waitFor } from '../../scripts/stack';
import { env as workerEnv } from '../../src/config';
import type { ReconcileReport } from '../../src/workflows/reconcile';
import { procs, startNode } from '../processes';
import { READS_TENANT, REQUESTER, REVIEWER, ROLE, account, log, settings } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { made } from '../load';
import { percentile, round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'reads',
  key: 'reads',
  title: 'reads',
  run,
  rows: (reads: any, s) => [
    ...([
      ['a reviewer’s first page of pending requests (50)', reads.queuePage],
      ['a principal’s grants page (50)', reads.grantsPage],
      ['a request by id', reads.requestById],
    ] as const).flatMap(([what, r]) => [
      [`${what}: p99`, `${r.api.p99} ms`, `${r.floor.p99} ms (one visibility call)`, x(r.api.p99, r.floor.p99), '≤ 1.5x', yes(r.api.p99 <= 1.5 * r.floor.p99)],
      [`${what}: p50`, `${r.api.p50} ms`, `${r.floor.p50} ms`, x(r.api.p50, r.floor.p50), '', ''],
    ]),
    [
      `a reconciliation round of the tenant (${reads.runs} runs)`,
      `${reads.reconcile.seconds} s, listing by ${reads.reconcile.listing} (${reads.reconcile.listed}), ${reads.reconcile.grantsChecked} grants checked`,
      '',
      '',
      '',
      '',
    ],
    [
      `all ${s.readsPending} pending requests, pages of 100 (median of ${reads.allPending.passes ?? 1} passes)`,
      `${reads.allPending.ms} ms, ${reads.allPending.pages} pages, ${reads.allPending.unique} listed`,
      `${reads.allPending.floorMs} ms (${reads.allPending.floorPages} visibility pages)`,
      x(reads.allPending.ms, reads.allPending.floorMs),
      'each once',
      yes(reads.allPending.everyPendingOnce),
    ],
    ...(reads.allPending.page
      ? [
          [`paging through them: a page (100), p99`, `${reads.allPending.page.p99} ms`, `${reads.allPending.floorPage.p99} ms (one visibility page)`, x(reads.allPending.page.p99, reads.allPending.floorPage.p99), '≤ 1.5x', yes(reads.allPending.page.p99 <= 1.5 * reads.allPending.floorPage.p99)],
          [`paging through them: a page (100), p50`, `${reads.allPending.page.p50} ms`, `${reads.allPending.floorPage.p50} ms`, x(reads.allPending.page.p50, reads.allPending.floorPage.p50), '', ''],
        ]
      : []),
  ],
  note: (reads: any, s) =>
    `Reads: one tenant with ${reads.runs} grant runs (${s.readsClosed} closed, ${s.readsActive} active, ${s.readsPending} pending requests; made in ` +
    `${reads.making.closedSeconds} + ${reads.making.activeSeconds} + ${reads.making.pendingSeconds} s), ${reads.samples} sequential calls per row, read by the API at ${reads.commit}.`,
};

async function run(b: Bench) {
  const { api, temporal, stack, dir, env, apiCall, ask, withdrawnRun, ok, apiPort } = b;
  const tenantId = READS_TENANT.id;
  const [requester, reviewer] = await Promise.all([stack.issueToken(tenantId, REQUESTER, { expiresIn: '4h' }), stack.issueToken(tenantId, REVIEWER, { expiresIn: '4h' })]);
  const call = <T = any>(token: string, method: string, url: string, body?: unknown) => apiCall<T>(tenantId, token, method, url, body);
  const making = {
    closedSeconds: await made('closed runs (requests withdrawn)', settings.readsClosed, (i) => withdrawnRun(tenantId, requester, REQUESTER.sub, account(9, i))),
    activeSeconds: await made('active grants', settings.readsActive, async (i) => void (await ask(tenantId, requester, account(4, i), ROLE))),
    pendingSeconds: 0,
  };
  const pending: string[] = [];
  making.pendingSeconds = await made('pending requests', settings.readsPending, async (i) => void pending.push((await ask(tenantId, requester, account(4, i), 'AdministratorAccess')).access_request_id!));
  const visible = `WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND AccessTenant = '${tenantId}'`;
  await waitFor('every withdrawn run closed, and every pending request listed', async () =>
    (await temporal.workflow.count(`${visible} AND ExecutionStatus != 'Running'`)).count >= settings.readsClosed &&
    (await temporal.workflow.count(`${visible} AND AccessAwaitingReview = true`)).count >= settings.readsPending, 30 * 60_000);
  const again = !!process.env.BENCH_READS_AGAIN;
  const measure = async () => ({ runs: (await temporal.workflow.count(visible)).count, making, ...(await measureReads(tenantId, visible, pending, call)) });
  // A read that fails (a server error on one of its thousands of calls) does not throw away a
  // world that took two hours: with BENCH_READS_AGAIN it is kept, to be read again.
  const attempt = () =>
    measure().catch((err: Error) => {
      if (!again) throw err;
      log(`reads: a read failed (${err.message}); the world is kept`);
      return undefined;
    });
  let latest = await attempt();
  if (!again) return latest;
  // BENCH_READS_AGAIN=1: the world is kept, and each SIGUSR2 reads it again with the API started
  // afresh from dist as it is then (rebuilt at a later commit, say); SIGUSR1 ends the bench.
  for (;;) {
    if (latest) {
      b.results.reads = latest;
      b.save();
    }
    log(`reads: ${latest ? `measured at ${latest.commit}` : 'not measured'}; SIGUSR2 (kill -USR2 ${process.pid}) reads again, SIGUSR1 ends`);
    // A signal listener alone does not keep Node's event loop alive: the timer does.
    const keepAlive = setInterval(() => {}, 60_000);
    const signal = await new Promise<string>((resolve) => {
      const on = (name: string) => () => {
        process.off('SIGUSR1', usr1);
        process.off('SIGUSR2', usr2);
        clearInterval(keepAlive);
        resolve(name);
      };
      const [usr1, usr2] = [on('SIGUSR1'), on('SIGUSR2')];
      process.on('SIGUSR1', usr1);
      process.on('SIGUSR2', usr2);
    });
    if (signal === 'SIGUSR1') {
      if (!latest) throw new Error('no read of the world succeeded');
      return latest;
    }
    await stopChild(b.apiProc);
    procs.splice(procs.indexOf(b.apiProc), 1);
    b.apiProc = startNode('api', 'src/api/server.js', [], { ...env, PORT: String(apiPort) }, dir);
    await waitFor('API', ok(`${api}/readyz`), 60_000);
    latest = (await attempt()) ?? latest;
  }

  /** The read rows on the reads tenant's world, as the API built from dist now answers them. */
  async function measureReads(tenantId: string, visible: string, pending: string[], call: <T = any>(token: string, method: string, url: string, body?: unknown) => Promise<T>) {
    const [requester, reviewer] = await Promise.all([stack.issueToken(tenantId, REQUESTER, { expiresIn: '4h' }), stack.issueToken(tenantId, REVIEWER, { expiresIn: '4h' })]);
    // One bare visibility call: what each read stands on.
    const { namespace } = temporal.options;
    const bare = async (query: string, pageSize: number, token?: Uint8Array) =>
      temporal.workflowService.listWorkflowExecutions({ namespace, query, pageSize, nextPageToken: token });
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const ms = (values: number[]) => ({ p50: round(percentile(values, 50), 1), p99: round(percentile(values, 99), 1) });
    /** Each sample times the API's call and then its floor's, in turn (the order alternating), so drift in the machine's load falls on both. */
    const timedPair = async (n: number, api: (i: number) => Promise<unknown>, floor: (i: number) => Promise<unknown>) => {
      const [apiMs, floorMs]: number[][] = [[], []];
      const time = async (call: (i: number) => Promise<unknown>, i: number, into: number[]) => {
        const t0 = performance.now();
        await call(i);
        into.push(performance.now() - t0);
      };
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) await time(api, i, apiMs), await time(floor, i, floorMs);
        else await time(floor, i, floorMs), await time(api, i, apiMs);
      }
      return { api: ms(apiMs), floor: ms(floorMs) };
    };
    const n = settings.readsSamples;
    const principal = `AccessPrincipal = '${encodeURIComponent(REQUESTER.sub)}'`;
    const pendingQuery = `${visible} AND AccessAwaitingReview = true`;
    const queuePage = await timedPair(n, () => call(reviewer, 'GET', '/v1/access/requests?status=pending&limit=50'), () => bare(pendingQuery, 50));
    const grantsPage = await timedPair(n, () => call(requester, 'GET', '/v1/access/grants?limit=50'), () => bare(`${visible} AND ${principal}`, 50));
    const idOf = (i: number) => pending[(i * 7919) % pending.length];
    const byId = await timedPair(n, (i) => call(reviewer, 'GET', `/v1/access/requests/${idOf(i)}`), (i) => bare(`${visible} AND AccessRequestIds = '${idOf(i)}'`, 50));
    // Every pending request, a page of 100 at a time, as a reviewer pages through the queue, beside
    // the same pages of bare visibility calls: each step times the API's next page and the floor's
    // next page, in turn (the order alternating), so drift in the machine's load falls on both.
    // Each page is timed, in every pass.
    const passes: { listed: string[]; ms: number; floorMs: number }[] = [];
    const [apiPageMs, floorPageMs]: number[][] = [[], []];
    for (let pass = 0; pass < settings.readsPasses; pass++) {
      const listed: string[] = [];
      const [apiFrom, floorFrom] = [apiPageMs.length, floorPageMs.length];
      let cursor: string | null | undefined; // undefined: not started; null: done
      let token: Uint8Array | null | undefined;
      const apiPage = async () => {
        const t0 = performance.now();
        const page: { requests: { id: string }[]; next_cursor: string | null } = await call(
          reviewer,
          'GET',
          `/v1/access/requests?status=pending&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        apiPageMs.push(performance.now() - t0);
        listed.push(...page.requests.map((r) => r.id));
        cursor = page.next_cursor;
      };
      const floorPage = async () => {
        const t0 = performance.now();
        const page = await bare(pendingQuery, 100, token ?? undefined);
        floorPageMs.push(performance.now() - t0);
        token = page.nextPageToken?.length ? page.nextPageToken : null;
      };
      for (let step = 0; cursor !== null || token !== null; step++) {
        const both = [cursor !== null && apiPage, token !== null && floorPage].filter((f) => f !== false);
        if ((step + pass) % 2 === 1) both.reverse();
        for (const next of both) await next();
      }
      passes.push({ listed, ms: sum(apiPageMs.slice(apiFrom)), floorMs: sum(floorPageMs.slice(floorFrom)) });
    }
    const listed = passes[0].listed;
    const unique = new Set(listed);
    // One reconciliation round of the tenant: what it lists follows the grants, not the runs.
    const t2 = performance.now();
    const reconciled = await temporal.workflow.execute<(input: { tenantId: string }) => Promise<ReconcileReport>>('reconcileWorkflow', {
      workflowId: `bench-reconcile/${Date.now()}`,
      taskQueue: workerEnv.taskQueue,
      args: [{ tenantId }],
    });
    const reconcile = {
      seconds: round((performance.now() - t2) / 1000, 1),
      listing: reconciled.listing,
      listed: reconciled.listed,
      grantsChecked: reconciled.grantsChecked,
      assignmentsChecked: reconciled.assignmentsChecked,
      restored: reconciled.restored.length,
      removed: reconciled.removed.length,
    };
    return {
      commit: execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(),
      reconcile,
      samples: n,
      queuePage,
      grantsPage,
      requestById: byId,
      allPending: {
        passes: passes.length,
        pages: apiPageMs.length / passes.length,
        ms: round(percentile(passes.map((p) => p.ms), 50), 0),
        page: ms(apiPageMs),
        floorPages: floorPageMs.length / passes.length,
        floorMs: round(percentile(passes.map((p) => p.floorMs), 50), 0),
        floorPage: ms(floorPageMs),
        listed: listed.length,
        unique: unique.size,
        // In every pass.
        everyPendingOnce: passes.every(({ listed }) => {
          const unique = new Set(listed);
          return listed.length === unique.size && pending.every((id) => unique.has(id)) && unique.size === settings.readsPending;
        }),
      },
    };
  }
}
