// The Temporal dev server stopped (cleanly, or killed) and started again on the same SQLite file
// while grants are active, some of them expiring while it is down: their timers still fire and
// the assignments go. The worker and the API stay up and reconnect by themselves. A scheduled
// grant starts on time after every process was killed before its start.
import assert from 'node:assert/strict';
import { eventually } from '../support/world';
import { type CrashWorld, sleep, startCrashWorld } from '../support/crash-world';

const ROUNDS = Number(process.env.TEMPORAL_RESTART_ROUNDS ?? 4);

describe('Temporal restarts (reliability)', function () {
  this.timeout(0);
  let world: CrashWorld;

  before(async () => {
    world = await startCrashWorld('temporal-restarts');
  });
  after(async () => {
    await world?.stop();
  });

  const inState = (account: string, status: string) =>
    eventually(`the grant on ${account} to be ${status}`, async () => {
      const state = await world.state(account);
      return state?.status === status ? state : undefined;
    }, 180_000);

  it(`expires grants on time across ${ROUNDS} restarts of the Temporal server`, async () => {
    let grants = 0;
    let lost = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const roundStarted = Date.now();
      // Two expire while the server is down, one after it is back.
      const durations = [4, 7, 40];
      const accounts = durations.map(() => world.freshAccount());
      for (const [i, account] of accounts.entries()) {
        const reply = await world.ensure(account, durations[i]);
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
      }
      grants += accounts.length;
      const active = await Promise.all(accounts.map((account) => inState(account, 'active')));
      for (const account of accounts) assert.equal(await world.assignments(account), 1);

      const signal = round % 2 === 1 ? 'SIGTERM' : 'SIGKILL';
      await world.stack.stopTemporal(signal);
      await sleep(Math.max(0, Date.parse(active[1].expiresAt!) - Date.now()) + 1000);
      await world.stack.startTemporal();

      for (const [i, account] of accounts.entries()) {
        const expired = await inState(account, 'expired');
        assert.equal(expired.id, active[i].id);
        assert.equal(expired.expiresAt, active[i].expiresAt);
        const left = await world.assignments(account);
        if (left !== 0) lost += 1;
        assert.equal(left, 0, `${account}: the assignment went`);
      }
      assert.ok(world.worker.running && world.api.running, 'the worker and the API lived through it');
      console.log(`      round ${round}/${ROUNDS} (${Math.round((Date.now() - roundStarted) / 1000)} s) (${signal}): ${accounts.length} grants expired`);
    }
    console.log(`      Temporal restarts: ${ROUNDS} (SIGTERM and SIGKILL in turn), ${grants} grants, ${lost} lost`);
    assert.equal(lost, 0);
  });

  it('a scheduled grant starts on time after every process was killed between the call and its start', async () => {
    const account = world.freshAccount();
    const startsAt = new Date(Date.now() + 15_000).toISOString();
    const reply = await world.ensure(account, 20, { starts_at: startsAt });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual([reply.body.grants[0].change, reply.body.grants[0].status], ['activated', 'pending']);
    await Promise.all([world.worker.kill(), world.api.kill(), world.stack.stopTemporal('SIGKILL')]);
    await sleep(Math.max(0, Date.parse(startsAt) - Date.now()) + 2000);
    assert.equal(await world.assignments(account), 0, 'nothing runs while every process is down');
    await world.stack.startTemporal();
    await Promise.all([world.worker.start(), world.api.start()]);

    const active = await inState(account, 'active');
    assert.equal(active.id, reply.body.grants[0].id);
    assert.ok(Date.parse(active.activatedAt!) >= Date.parse(startsAt), `activated ${active.activatedAt}, not before ${startsAt}`);
    assert.equal(Date.parse(active.expiresAt!) - Date.parse(active.activatedAt!), 20_000, 'the clock starts at activation');
    assert.equal(await world.assignments(account), 1);
    await inState(account, 'expired');
    assert.equal(await world.assignments(account), 0);
  });
});
