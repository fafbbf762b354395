// Many rounds of `kill -9` of the API in the middle of ensure calls, new grants and extensions,
// some while the worker is down too (so the calls are certainly waiting inside the API). The
// client retries what was cut off: each key still has exactly one grant and one assignment. Every
// round's kill cuts off calls in flight (each account asks again and again until the API dies).
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

      // Each account's ensure is asked again as soon as it is answered (an answer repeats the
      // grant: `none`), until the API dies: whenever the kill lands, every account has a call in
      // flight, even when the worker is up and each call takes a few milliseconds.
      const cutOffAt = accounts.map(() => false);
      const answeredNow = accounts.map(() => false);
      const inFlight = accounts.map(async (account, i) => {
        while (world.api.running) {
          let reply: Awaited<ReturnType<CrashWorld['ensure']>>;
          try {
            reply = await world.ensure(account, durations.get(account)!);
          } catch (err) {
            // Refused: sent after the kill, it never reached the API. Anything else (a reset, a
            // closed socket) is a call the kill cut off.
            if ((err as { cause?: { code?: string } }).cause?.code !== 'ECONNREFUSED') {
              calls += 1;
              cutOffAt[i] = true;
            }
            return;
          }
          calls += 1;
          assert.equal(reply.status, 200, JSON.stringify(reply.body));
          answered(account, reply.body.grants[0].id);
          answeredNow[i] = true;
        }
      });
      await sleep(workerDown ? 1500 : Math.floor(Math.random() * 1500));
      await world.api.kill();
      await Promise.all(inFlight);
      const roundCutOff = cutOffAt.filter(Boolean).length;
      // The claim is about calls the crash interrupts: a round whose kill met no call in flight
      // would prove nothing.
      assert.ok(roundCutOff > 0, `round ${round}: the kill cut off none of the ${accounts.length} accounts' calls`);
      await Promise.all([world.api.start(), workerDown ? world.worker.start() : undefined]);

      for (const [i, account] of accounts.entries()) {
        // Cut off, or (refused at its first try) never asked this round: asked again, as a client would.
        if (!cutOffAt[i] && answeredNow[i]) continue;
        if (cutOffAt[i]) cutOff += 1;
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
      console.log(`      round ${round}/${ROUNDS} (${Math.round((Date.now() - roundStarted) / 1000)} s)${workerDown ? ' (worker down too)' : ''}: ${roundCutOff}/${accounts.length} accounts' calls cut off`);
    }
    console.log(`      API crashes: ${ROUNDS} rounds, ${world.api.kills} kill -9 of the API, ${calls} ensure calls (${cutOff} cut off and retried), ${ids.size} grants, ${lost} lost or duplicated`);
    assert.equal(lost, 0);
  });
});
