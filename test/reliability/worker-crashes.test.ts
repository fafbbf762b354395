// Many rounds of `kill -9` of the worker: while it waits for moto's answer to a provisioning call
// (moto has acted, the worker never hears), while it waits for a deprovisioning call, and at a
// random moment in between. Every grant must still become active with exactly one assignment and
// expire on its own with none left.
import assert from 'node:assert/strict';
import { eventually } from '../support/world';
import { type CrashWorld, sleep, startCrashWorld } from '../support/crash-world';
import { env } from '../../src/config';
import { countFromEnv } from '../support/env';

const ROUNDS = countFromEnv('CRASH_ROUNDS', 8);
const GRANTS_PER_ROUND = 4;
const DURATION_SECONDS = 20;
// Taken in turn, round by round, so that any run of two rounds or more holds each at least once:
// mostly the call that changes the assignment, and the lookup before it.
const PROVISIONING_CALLS = ['CreateAccountAssignment', 'ListAccountAssignments', 'CreateAccountAssignment'];
// A deletion's first attempt deletes at once; only a retry lists first, so the deletion call is the one to hold.
const DEPROVISIONING_CALLS = ['DeleteAccountAssignment'];

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)];
const jitter = (maxMs: number) => sleep(Math.floor(Math.random() * maxMs));

describe('worker crashes (reliability)', function () {
  this.timeout(0);
  let world: CrashWorld;

  before(async () => {
    world = await startCrashWorld('worker-crashes');
  });
  after(async () => {
    await world?.stop();
  });

  it(`keeps every grant right through ${ROUNDS} rounds of kill -9 during provisioning and deprovisioning`, async () => {
    const killedDuring: Record<string, number> = {};
    let grants = 0;
    let lost = 0;
    let checkedWhileActive = 0;
    /** From each grant's expires_at to its run seen expired (polled every 250 ms): what the kills cost. */
    const lags: number[] = [];
    const check = async (account: string, id: string): Promise<void> => {
      const inState = (status: string) =>
        eventually(`grant ${id} to be ${status}`, async () => {
          const state = await world.state(account);
          return state?.status === status ? state : undefined;
        }, 300_000);
      const active = await inState('active');
      assert.equal(active.id, id);
      const whileActive = await world.assignments(account);
      const after = await world.state(account);
      // Only while the grant still holds (a slow round may find it already ending): counted below.
      if (after?.status === 'active' && !after.closing) {
        checkedWhileActive += 1;
        if (whileActive !== 1) lost += 1;
        assert.equal(whileActive, 1, `${account}: exactly one assignment while the grant is active`);
      }
      const expired = await inState('expired');
      lags.push((Date.now() - Date.parse(active.expiresAt!)) / 1000);
      assert.equal(expired.id, id);
      assert.equal(expired.expiresAt, active.expiresAt, 'the expiry did not move');
      const left = await world.assignments(account);
      if (left !== 0) lost += 1;
      assert.equal(left, 0, `${account}: no assignment left after expiry`);
    };

    for (let round = 1; round <= ROUNDS; round++) {
      const roundStarted = Date.now();
      const accounts = Array.from({ length: GRANTS_PER_ROUND }, () => world.freshAccount());
      const provisioningKill = world.killWorkerDuring([PROVISIONING_CALLS[(round - 1) % PROVISIONING_CALLS.length]]);
      // Not awaited before the worker is back: the kill can come while another grant's ensure
      // still waits for the worker to take its update.
      const replying = Promise.all(accounts.map((account) => world.ensure(account, DURATION_SECONDS)));
      replying.catch(() => undefined); // awaited below; no unhandled rejection meanwhile

      const during = await provisioningKill;
      killedDuring[during] = (killedDuring[during] ?? 0) + 1;
      await jitter(2000);
      await world.worker.start();

      const replies = await replying;
      for (const reply of replies) assert.equal(reply.status, 200, JSON.stringify(reply.body));
      grants += accounts.length;
      const checks = accounts.map((account, i) => check(account, replies[i].body.grants[0].id));
      checks.forEach((c) => c.catch(() => undefined)); // awaited below; no unhandled rejection meanwhile

      await jitter(3000);
      await world.worker.kill();
      killedDuring['(a random moment)'] = (killedDuring['(a random moment)'] ?? 0) + 1;
      await world.worker.start();

      const deprovisioningKill = await world.killWorkerDuring([pick(DEPROVISIONING_CALLS)], 300_000);
      killedDuring[`${deprovisioningKill} (around expiry)`] = (killedDuring[`${deprovisioningKill} (around expiry)`] ?? 0) + 1;
      await jitter(2000);
      await world.worker.start();

      await Promise.all(checks);
      console.log(`      round ${round}/${ROUNDS} (${Math.round((Date.now() - roundStarted) / 1000)} s): ${world.worker.kills} kills so far, ${grants} grants right`);
    }
    console.log(`      worker crashes: ${ROUNDS} rounds, ${world.worker.kills} kill -9 of the worker (${JSON.stringify(killedDuring)}), ${grants} grants (${checkedWhileActive} checked while active), ${lost} lost or duplicated`);
    const sorted = [...lags].sort((a, b) => a - b);
    const stickySeconds = env.workerStickyTimeoutMs / 1000;
    // A workflow task Temporal put on the killed worker's sticky queue before it noticed the worker
    // gone waits out the sticky timeout (config.ts): the price of a longer one, paid only on a crash.
    console.log(
      `      expiry lag through the kills (sticky timeout ${stickySeconds} s): p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} s, ` +
        `p90 ${sorted[Math.floor(sorted.length * 0.9)].toFixed(1)} s, max ${sorted.at(-1)!.toFixed(1)} s`,
    );
    assert.equal(lost, 0);
    for (const call of PROVISIONING_CALLS.slice(0, ROUNDS)) assert.ok(killedDuring[call] > 0, `a kill while ${call} was held`);
    // A grant lives 20 s after its activation: most are still active when checked.
    assert.ok(checkedWhileActive >= grants / 2, `exactly one assignment was checked while active for ${checkedWhileActive} of ${grants} grants`);
  });
});
