// Many rounds of `kill -9` of the API in the middle of ensure calls, new grants and extensions,
// some while the worker is down too (so the calls are certainly waiting inside the API). The
// client retries what was cut off: each key still has exactly one grant and one assignment.
import assert from 'node:assert/strict';
import { eventually } from '../support/world';
import { type CrashWorld, sleep, startCrashWorld } from '../support/crash-world';
import { countFromEnv } from '../support/env';

const ROUNDS = countFromEnv('API_CRASH_ROUNDS', 10);

describe('API crashes (reliability)', function () {
  this.timeout(0);
  let world: CrashWorld;

  before(async () => {
    world = await startCrashWorld('api-crashes', { max_duration_seconds: 600 * ROUNDS });
  });
  after(async () => {
    await world?.stop();
  });

  it(`keeps one grant per key when ${ROUNDS} rounds of ensure calls are cut off by API crashes and retried`, async () => {
    const ids = new Map<string, Set<string>>(); // account -> every grant id an answer named
    const durations = new Map<string, number>();
    let calls = 0;
    let cutOff = 0;
    let lost = 0;
    const answered = (account: string, id: string) => ids.set(account, (ids.get(account) ?? new Set()).add(id));

    for (let round = 1; round <= ROUNDS; round++) {
      const roundStarted = Date.now();
      const fresh = Array.from({ length: 4 }, () => world.freshAccount());
      const extending = [...durations.keys()].slice(-2); // real extensions: each asks for longer than before
      const accounts = [...fresh, ...extending];
      for (const account of accounts) durations.set(account, 600 * round);
      const workerDown = round % 3 === 0;
      if (workerDown) await world.worker.kill();

      const inFlight = accounts.map((account) => {
        calls += 1;
        return world.ensure(account, durations.get(account)!).then(
          (reply) => {
            assert.equal(reply.status, 200, JSON.stringify(reply.body));
            answered(account, reply.body.grants[0].id);
            return true;
          },
          () => false,
        );
      });
      await sleep(workerDown ? 1500 : Math.floor(Math.random() * 1500));
      await world.api.kill();
      const done = await Promise.all(inFlight);
      await Promise.all([world.api.start(), workerDown ? world.worker.start() : undefined]);

      for (const [i, account] of accounts.entries()) {
        if (done[i]) continue;
        cutOff += 1;
        calls += 1;
        const retry = await world.ensure(account, durations.get(account)!);
        assert.equal(retry.status, 200, JSON.stringify(retry.body));
        assert.ok(['activated', 'extended', 'none'].includes(retry.body.grants[0].change));
        answered(account, retry.body.grants[0].id);
      }

      for (const account of accounts) {
        const state = await eventually(`the grant on ${account} to be active`, async () => {
          const s = await world.state(account);
          return s?.status === 'active' ? s : undefined;
        }, 180_000);
        const listed = await world.get(`?target=AWS::Account::${account}`);
        const listedIds = listed.body.grants.map((g: { id: string }) => g.id);
        const assignments = await world.assignments(account);
        const right = listedIds.length === 1 && listedIds[0] === state.id && ids.get(account)!.size === 1 && ids.get(account)!.has(state.id) && assignments === 1;
        if (!right) lost += 1;
        assert.deepEqual(listedIds, [state.id], `${account}: one grant`);
        assert.deepEqual([...ids.get(account)!], [state.id], `${account}: every answer named the same grant`);
        assert.equal(assignments, 1, `${account}: one assignment`);
        assert.equal(state.durationSeconds, durations.get(account), `${account}: the latest call's duration counts`);
      }
      console.log(`      round ${round}/${ROUNDS} (${Math.round((Date.now() - roundStarted) / 1000)} s)${workerDown ? ' (worker down too)' : ''}: ${done.filter((d) => !d).length}/${accounts.length} calls cut off`);
    }
    console.log(`      API crashes: ${ROUNDS} rounds, ${world.api.kills} kill -9 of the API, ${calls} ensure calls (${cutOff} cut off and retried), ${ids.size} grants, ${lost} lost or duplicated`);
    assert.equal(lost, 0);
  });
});
