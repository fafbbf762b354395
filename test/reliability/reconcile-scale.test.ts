// Reconciliation at an organisation's size (issue 25): a tenant listing 3,000 accounts on an
// instance with 25 permission sets, 500 grants, 100 of them terminated by an operator. One round
// lists only where its grants are, so it finishes within a minute and removes every terminated
// grant's assignment, while an activation burst still gets its calls. Its own stack (the round
// must see this tenant alone). Long: runs under `npm run test:reliability`, not `npm test`.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ReconcileReport } from '../../src/workflows/reconcile';
import { CRASH_TENANT, type CrashWorld, startCrashWorld } from '../support/crash-world';

const ACCOUNTS = 3000;
const PERMISSION_SETS = 25;
const GRANTS = 500;
const TERMINATED = 100;
const BURST = 40;
/** The bound for one round on a 2-core machine; a round that listed every pair would take about 70 minutes of the whole quota. */
const ROUND_SECONDS = 60;

const accountOf = (i: number) => `7${String(i).padStart(11, '0')}`;

describe('reconciliation at an organisation’s size', function () {
  this.timeout(30 * 60_000);
  let world: CrashWorld;

  before(async () => {
    world = await startCrashWorld('reconcile-scale', {}, {
      accounts: Array.from({ length: ACCOUNTS }, (_, i) => accountOf(i)),
      permissionSets: Array.from({ length: PERMISSION_SETS - 1 }, (_, i) => `Team${i}Access`),
      // The rounds measured here are the test's own: no scheduled one in between.
      reconcileIntervalSeconds: 86_400,
    });
  });
  after(() => world?.stop());

  async function activate(account: string): Promise<void> {
    const deadline = Date.now() + 10 * 60_000;
    for (;;) {
      const reply = await world.ensure(account, 7200);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      if (reply.body.grants[0].status === 'active') return;
      assert.ok(Date.now() < deadline, `${account} still ${reply.body.grants[0].status}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  async function inParallel(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < n) await task(next++);
    }));
  }

  it(`lists only where its ${GRANTS} grants are, within ${ROUND_SECONDS} s, and removes every terminated grant’s assignment while an activation burst goes on`, async () => {
    await inParallel(GRANTS, 20, (i) => activate(accountOf(i)));
    // An operator terminates some from the Web UI: no cleanup runs, their assignments stay.
    for (let i = 0; i < TERMINATED; i++) await world.temporal.workflow.getHandle(world.workflowId(accountOf(i))).terminate('test: operator terminates');
    for (const i of [0, TERMINATED - 1]) assert.equal(await world.assignments(accountOf(i)), 1, 'left in place by the termination');

    const before = world.awsCalls();
    const started = Date.now();
    const round = world.temporal.workflow.execute<(input: { tenantId: string }) => Promise<ReconcileReport>>('reconcileWorkflow', {
      workflowId: `reconcile-scale/${randomUUID()}`,
      taskQueue: 'access-grants-reconcile-scale',
      args: [{ tenantId: CRASH_TENANT.id }],
    });
    const burst = inParallel(BURST, BURST, (i) => activate(accountOf(GRANTS + i)));
    const report = await round;
    const seconds = (Date.now() - started) / 1000;
    await burst;
    const after = world.awsCalls();
    const calls = (op: string) => (after[op] ?? 0) - (before[op] ?? 0);

    const removed = report.removed.filter((r) => r.removed);
    console.log(
      `      one round: ${seconds.toFixed(1)} s, listing by ${report.listing} (${report.listed}), ${report.grantsChecked} grants checked, ` +
        `${report.assignmentsChecked} assignments seen, ${removed.length} removed; ListAccountAssignments ${calls('ListAccountAssignments')}, ` +
        `ListAccountAssignmentsForPrincipal ${calls('ListAccountAssignmentsForPrincipal')} calls (every pair: ${ACCOUNTS * PERMISSION_SETS})`,
    );
    assert.equal(removed.length, TERMINATED, JSON.stringify(report.removed.filter((r) => !r.removed).slice(0, 5)));
    assert.equal(report.truncated, false);
    for (let i = 0; i < TERMINATED; i++) assert.equal(await world.assignments(accountOf(i)), 0, `${accountOf(i)}: the terminated grant's assignment is gone`);
    for (const i of [TERMINATED, GRANTS - 1, GRANTS, GRANTS + BURST - 1]) assert.equal(await world.assignments(accountOf(i)), 1, `${accountOf(i)}: an active grant keeps its assignment`);
    // One user holds every grant here: a few pages of one listing (100 a page), never one call per
    // account and permission set. The burst's activations each look once (ListAccountAssignments).
    assert.equal(report.listing, 'users');
    assert.equal(report.listed, 1);
    assert.ok(calls('ListAccountAssignmentsForPrincipal') <= Math.ceil((GRANTS + BURST) / 100) + 2, 'the listing follows the grants');
    assert.ok(calls('ListAccountAssignments') <= BURST + 10, 'no listing per pair');
    assert.ok(seconds < ROUND_SECONDS, `one round took ${seconds.toFixed(1)} s`);
  });
});
